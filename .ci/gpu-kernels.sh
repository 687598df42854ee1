#!/usr/bin/env bash
# GPU kernels without a GPU: installs PoCL (OpenCL on the CPU) and the NVRTC wheel, then runs
# every argen-cuda kernel on PoCL against the argen-core reference and compiles the program with
# NVRTC for sm_72, sm_87, sm_89 and sm_90 (any error or warning fails). Absence of either tool
# is a failure here (ARGEN_REQUIRE_*), while plain `cargo test` skips with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clinfo >/dev/null 2>&1 || ! clinfo 2>/dev/null | grep -q "Portable Computing Language"; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pocl-opencl-icd ocl-icd-opencl-dev clinfo >/dev/null
fi
python3 -m pip install -q "nvidia-cuda-nvrtc-cu12>=12.6,<13"
NVRTC_DIR="$(python3 -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))')"
export ARGEN_CUDA_LIB_DIR="$NVRTC_DIR"
export ARGEN_REQUIRE_OPENCL=1 ARGEN_REQUIRE_NVRTC=1
cargo test --release -p argen-cuda --test nvrtc_compile --test pocl_parity --test pocl_model_ops --test pocl_model --test pocl_decode
