#!/usr/bin/env bash
# System packages valley's tests and demo use: gVisor (runsc) for the grader sandbox,
# Docker's engine and a registry for the image-build tests, Chromium for the MLflow UI check.
set -euo pipefail
need=()
command -v runsc >/dev/null || need+=(runsc)
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v kubectl >/dev/null || need+=(kubectl)  # kustomize builds of k8s/ in the tests
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "valley: missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
