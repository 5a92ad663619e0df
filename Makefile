# nextchat — build, test and check. `make help` lists the targets.
SHELL := /bin/bash
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_CUDA  ?= build-cuda
GO          ?= go
JOBS        ?= $(shell nproc)
# A CUDA toolkit root for cuda-check; .ci/install-cuda.sh makes one from PyPI wheels without a GPU.
CUDA_ROOT   ?= $(shell command -v nvcc >/dev/null 2>&1 && dirname $$(dirname $$(command -v nvcc)) || echo /opt/nextchat-cuda/cuda)
DEMO_DIR    ?= out/demo-tiny
# Go's build cache does not track C headers outside the package: a hash of the ABI header in the cgo flags
# makes every change to it rebuild the bindings instead of linking stale ones.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations -DNC_HEADER_SHA=$(shell sha256sum csrc/include/nextchat.h | cut -c1-16)

.PHONY: all help deps lib test test-cpp test-go test-asan bench bench-compare check-7b-rss cuda-check demo fuzz clean goldens goldens-verify ref-venv

all: lib bin/nextchat

help:
	@echo "make            build libnextchat (CMake) and bin/nextchat"
	@echo "make demo       install build tools if missing, build, generate a synthetic tiny checkpoint (random weights), inspect it, ask it about an image"
	@echo "make test       C++ tests (ctest), then go test -race -count=1 ./..."
	@echo "make test-asan  C++ tests built with AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench      Go benchmarks (safetensors parsing, checkpoint generation, fp16 conversion), linear's kernels, every op against the roofline"
	@echo "make bench-compare BENCH_MODEL=DIR [BENCH_FLAGS='--llm-weights int8' or compact]  nextchat bench llm vs PyTorch eager (both OMP wait policies), ratios"
	@echo "make check-7b-rss  synthetic 7b bf16 (M7B=$(M7B), generated if absent: 15.5 GB) grounds one expression with a mask on the CPU; peak RSS must be within 5% of the memory plan (slow: not part of make test; RSS_FLAGS='--llm-weights compact' for re-coded weights)"
	@echo "make cuda-check compile every .cu for sm_80, sm_90 and sm_90a (CUDA_ROOT=$(CUDA_ROOT))"
	@echo "make fuzz       run the safetensors header, torch checkpoint and chat request fuzzers, each for FUZZTIME (default 60s)"
	@echo "make goldens    regenerate every golden with the PyTorch reference (venv REF_VENV=$(REF_VENV))"
	@echo "make goldens-verify  regenerate elsewhere and compare byte for byte with testdata/golden"
	@echo "make clean      remove build outputs"

deps:
	@bash .ci/install-deps.sh

lib:
	@cmake -S . -B $(BUILD) -G Ninja -DNEXTCHAT_CUDA=AUTO >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

bin/nextchat: lib $(shell find cmd internal bindings -name '*.go' -not -name '*_test.go') go.mod go.sum
	$(GO) build -o bin/nextchat ./cmd/nextchat

test: test-cpp test-go

test-cpp: lib
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-go: lib
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

test-asan:
	@cmake -S . -B $(BUILD_ASAN) -G Ninja -DNEXTCHAT_CUDA=OFF -DNEXTCHAT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS)

bench: lib
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...
	$(BUILD)/nextchat_bench_linear 5632 2048 16 0 bf16 1 4 8 16 64 256
	$(BUILD)/nextchat_bench_ops 0

BENCH_MODEL ?= out/bench-small
bench-compare: all ref-venv
	@test -d $(BENCH_MODEL) || bin/nextchat gen --config small --dtype bf16 --seed 5 --out $(BENCH_MODEL)
	$(REF_PY) tools/reference/bench_compare.py $(BENCH_MODEL) 2 $(BENCH_FLAGS)

# The real-shape check of the memory plan (docs/ARCHITECTURE.md "Memory plan"): too slow and large for CI.
M7B       ?= /tmp/m7b
RSS_IMAGE ?= testdata/images/wide_64x48.png
RSS_CTX   ?= 1024
RSS_FLAGS ?=# e.g. --llm-weights compact
check-7b-rss: all
	@test -d $(M7B) || bin/nextchat gen --config 7b --dtype bf16 --seed 7 --out $(M7B)
	set -o pipefail; bin/nextchat ground --model $(M7B) --image $(RSS_IMAGE) --mask --ctx $(RSS_CTX) --report-rss $(RSS_FLAGS) "the red circle" 2>&1 | tee $(BUILD)/check-7b-rss.log
	@awk '/RSS\/plan/ { r = $$NF; found = 1 } END { if (!found) { print "no RSS report"; exit 1 } \
		if (r < 0.95 || r > 1.05) { printf "peak RSS / plan = %s: outside [0.95, 1.05]\n", r; exit 1 } \
		printf "peak RSS / plan = %s: within 5%%\n", r }' $(BUILD)/check-7b-rss.log

cuda-check:
	@test -x "$(CUDA_ROOT)/bin/nvcc" || { echo "no nvcc under CUDA_ROOT=$(CUDA_ROOT); run: CUDA_ROOT=\$$(bash .ci/install-cuda.sh | tail -1)"; exit 1; }
	cmake -S . -B $(BUILD_CUDA) -G Ninja -DNEXTCHAT_CUDA=ON -DNEXTCHAT_TESTS=ON \
		-DCMAKE_CUDA_COMPILER=$(CUDA_ROOT)/bin/nvcc -DCUDAToolkit_ROOT=$(CUDA_ROOT) \
		-DCMAKE_CUDA_ARCHITECTURES="80;90;90a" -DCMAKE_BUILD_RPATH=$(CUDA_ROOT)/lib64 >/dev/null
	cmake --build $(BUILD_CUDA) -j $(JOBS)
	@echo "cuda-check: every .cu compiled for sm_80, sm_90, sm_90a"

demo: deps all
	bin/nextchat version
	bin/nextchat gen --config tiny --seed 1 --out $(DEMO_DIR) --force
	bin/nextchat info --model $(DEMO_DIR)
	bin/nextchat run --model $(DEMO_DIR) --image testdata/images/wide_64x48.png --max-new-tokens 16 \
		--prefix "Answer: <at>" --out-image $(DEMO_DIR)/answer.png "Where is the red circle in the image?"
	@echo "(random weights: the answer and its box are noise; $(DEMO_DIR)/answer.png shows the box drawn)"
	@echo "next: bin/nextchat serve --model $(DEMO_DIR), then open http://127.0.0.1:8080/ (docs/SERVER.md)"

# The PyTorch reference (tools/reference): its own venv from pinned requirements; CI never needs it.
REF_VENV ?= tools/reference/.venv
REF_PY   := $(REF_VENV)/bin/python
TOKENIZER_MODEL ?= ../shared/testdata/tokenizer/llama.model

ref-venv:
	@test -x $(REF_PY) || python3 -m venv $(REF_VENV)
	@$(REF_PY) -m pip install -q -r tools/reference/requirements.txt

goldens: all ref-venv
	$(REF_PY) tools/reference/tokenizer_goldens.py --tokenizer $(TOKENIZER_MODEL) --out testdata/golden/tokenizer
	$(REF_PY) tools/reference/image_goldens.py --out testdata/golden/image
	$(REF_PY) tools/reference/make_model_goldens.py
	$(REF_PY) tools/reference/make_bin_fixture.py
	$(REF_PY) internal/torchbin/testdata/make_fuzz_seeds.py
	$(REF_PY) tools/reference/selfcheck.py

goldens-verify: all ref-venv
	$(REF_PY) tools/reference/make_model_goldens.py --verify
	$(REF_PY) tools/reference/make_bin_fixture.py --verify
	$(REF_PY) tools/reference/selfcheck.py

FUZZTIME ?= 60s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParseHeader -fuzztime=$(FUZZTIME) ./internal/safetensors/
	$(GO) test -run='^$$' -fuzz=FuzzUnpickle -fuzztime=$(FUZZTIME) ./internal/torchbin/
	$(GO) test -run='^$$' -fuzz=FuzzRead -fuzztime=$(FUZZTIME) ./internal/torchbin/
	$(GO) test -run='^$$' -fuzz=FuzzPickleInArchive -fuzztime=$(FUZZTIME) ./internal/torchbin/
	$(GO) test -run='^$$' -fuzz=FuzzChatJob -fuzztime=$(FUZZTIME) ./internal/server/

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_CUDA) bin out
