#!/usr/bin/env bash
# Pack what benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch but no network:
#
#   .gpu/wheels/     the test and notebook packages that a PyTorch CUDA image usually lacks
#                    (Opacus, nbval, ipywidgets, the Jupyter kernel, byzfl and what they need),
#                    at the versions installed here, built for the GPU machine's Python;
#   .gpu/data.tar.gz the MNIST copy of $FLTUTOR_DATA, compressed, and with --full DIR
#   .gpu/data-full.tar.gz the full MNIST of DIR, for the paper-scale rows.
#
# Run it here, in the repository root, with the project's virtual environment installed (.venv);
# then copy the repository with .gpu/ to the GPU machine and run `bash benchmarks/gpu_check.sh`.
#
#   bash benchmarks/gpu_prepare.sh                       # Python 3.12 on the GPU machine
#   GPU_PYTHON=3.11 bash benchmarks/gpu_prepare.sh --full ~/data/mnist-full
set -euo pipefail
cd "$(dirname "$0")/.."

full=""
if [ "${1:-}" = "--full" ]; then
  full="${2:?--full needs the folder that holds the full MNIST (MNIST/raw/...)}"
  [ -d "$full/MNIST/raw" ] || { echo "--full=$full is not allowed: it holds no MNIST/raw folder" >&2; exit 2; }
fi
: "${FLTUTOR_DATA:?set FLTUTOR_DATA to the folder holding MNIST/raw (the data the tests use)}"
[ -d "$FLTUTOR_DATA/MNIST/raw" ] || { echo "FLTUTOR_DATA=$FLTUTOR_DATA is not allowed: it holds no MNIST/raw folder" >&2; exit 2; }
python_version="${GPU_PYTHON:-3.12}"

# The packages to carry: everything the test extra and the notebooks need, with what they need in
# turn, as installed in .venv, except what a PyTorch CUDA image brings (torch and its CUDA
# libraries, numpy, scipy, matplotlib, scikit-learn, pytest, ...).
pins=$(.venv/bin/python - <<'EOF'
import re
from importlib import metadata

from packaging.requirements import Requirement

ROOTS = ["opacus", "nbval", "ipywidgets", "ipykernel", "byzfl", "hypothesis", "torchmetrics"]
ON_A_CUDA_IMAGE = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*|numpy|scipy|matplotlib|"
                             r"scikit-learn|pillow|pytest|pluggy|iniconfig|packaging|setuptools|"
                             r"sympy|mpmath|networkx|jinja2|markupsafe|filelock|fsspec|"
                             r"typing-extensions|contourpy|cycler|fonttools|kiwisolver|pyparsing|"
                             r"python-dateutil|six|joblib|threadpoolctl|psutil|attrs|"
                             r"sortedcontainers|coverage|pygments|tqdm|pandas|seaborn|opt-einsum|"
                             r"lightning-utilities|tzdata|pytz)$")

seen, todo = {}, list(ROOTS)
while todo:
    package = todo.pop()
    if package in seen or ON_A_CUDA_IMAGE.match(package):
        continue
    dist = metadata.distribution(package)
    seen[package] = dist.version
    for text in dist.requires or []:
        requirement = Requirement(text)  # on Linux, without extras
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(requirement.name.lower().replace("_", "-"))
print("\n".join(f"{package}=={version}" for package, version in sorted(seen.items())))
EOF
)
rm -rf .gpu/wheels && mkdir -p .gpu/wheels
platforms=()
for tag in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 \
           manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
# shellcheck disable=SC2086
PIP_FIND_LINKS= .venv/bin/pip download -q --no-deps --only-binary=:all: \
  --python-version "$python_version" --implementation cp "${platforms[@]}" \
  -d .gpu/wheels $pins

tar -czf .gpu/data.tar.gz -C "$FLTUTOR_DATA" MNIST
rm -f .gpu/data-full.tar.gz
if [ -n "$full" ]; then
  tar -czf .gpu/data-full.tar.gz -C "$full" MNIST
fi
echo "packed $(ls .gpu/wheels | wc -l) wheels and the data: $(du -sh .gpu | cut -f1) in .gpu/"
