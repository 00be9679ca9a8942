# A thin front for people; CMake is the build. Extra configure flags pass
# through CMAKE_ARGS, e.g.  make CMAKE_ARGS="-DLORY_CUDA=OFF -DLORY_NATIVE=OFF"
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
CTEST_ARGS ?=
# Sub-makes run by cmake --build need not announce every directory change.
MAKEFLAGS  += --no-print-directory
SAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all build deps test test-cuda debug asan clean help

all: build

help:
	@echo "make deps       install missing Debian/Ubuntu packages (tools/install-deps.sh)"
	@echo "make / build    Release build in build/ (binaries in build/bin/)"
	@echo "make test       build, then run every test (CUDA tests skip without a GPU)"
	@echo "make test-cuda  build, then run only the CUDA tests (ctest -L cuda)"
	@echo "make debug      Debug build in build-debug/"
	@echo "make asan       ASan+UBSan build in build-asan/ (CPU only), then run the tests"
	@echo "make clean      remove build/, build-debug/, build-asan/"
	@echo "variables: CMAKE_ARGS='-DLORY_CUDA=OFF ...'  CTEST_ARGS='-R philox'  JOBS=$(JOBS)"

deps:
	bash tools/install-deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build build -j $(JOBS)

test: build
	ctest --test-dir build --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-cuda: build
	@test -x build/bin/lory_cuda_tests || \
	  { echo "test-cuda: this build has no CUDA (no nvcc was found at configure time): nothing to test"; exit 1; }
	ctest --test-dir build --output-on-failure --no-tests=error -V -L cuda $(CTEST_ARGS)

debug:
	cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build build-debug -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLORY_SANITIZE=ON -DLORY_CUDA=OFF $(CMAKE_ARGS)
	cmake --build build-asan -j $(JOBS)
	$(SAN_ENV) ctest --test-dir build-asan --output-on-failure -j $(JOBS) $(CTEST_ARGS)

clean:
	rm -rf build build-debug build-asan
