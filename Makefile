# codesrcfs — `make` builds build/codesrcfs; `make check` runs every test; `make demo`.
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
SBINDIR   ?= /sbin
BUILD     ?= build
CC        ?= cc
PKGS      := fuse3 libcurl json-c openssl
SANITIZE  ?=
PYTHON    := /usr/bin/python3

CFLAGS    ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -std=gnu11 -Wall -Wextra -Werror -Wshadow -Iinclude -Isrc \
	     $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	     -DCODESRCFS_VERSION=\"$(VERSION)\" $(SANITIZE)
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# src/providers/: one file per cloud, and the table of them (docs/hacking.md).
SRC       := $(wildcard src/*.c src/providers/*.c)
HDR       := $(wildcard include/*.h src/*.h src/providers/*.h)
OBJ       := $(SRC:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJ   := $(filter-out $(BUILD)/obj/main.o,$(OBJ))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HDR  := $(wildcard tests/unit/*.h)
ASAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# What compiling needs, checked before the first compiler run (build-deps): each
# pkg-config name with the Debian package that brings it, and uthash's header.
BUILD_PC  := fuse3:libfuse3-dev libcurl:libcurl4-openssl-dev json-c:libjson-c-dev \
	     openssl:libssl-dev
BUILD_MISSING = $(strip $(shell \
	if command -v pkg-config >/dev/null 2>&1; then \
		for p in $(BUILD_PC); do pkg-config --exists $${p%%:*} || echo $${p#*:}; done; \
	else echo pkg-config; fi; \
	if command -v $(firstword $(CC)) >/dev/null 2>&1; then \
		printf '\043include <uthash.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 || echo uthash-dev; \
	else echo gcc; fi))

DEB_BUILD := gcc make pkg-config libfuse3-dev libcurl4-openssl-dev libjson-c-dev libssl-dev \
	     uthash-dev libcmocka-dev
DEB_TEST  := fuse3 python3 python3-pytest git jq clang libclang-rt-14-dev valgrind openssl \
	     tinyproxy nghttp2-proxy clang-format
DEB_FORMAT := clang-format
DEB_DEMO  := fuse3 python3 git
DEB_BENCH := fuse3 python3 jq httpdirfs rclone openssl nghttp2-proxy
DEB_DEB   := build-essential dpkg-dev debhelper lintian

.PHONY: build-deps all unit integration check check-plain check-asan demo deps deps-test deps-demo deps-bench \
	install uninstall clean format format-check bench fuzz fuzz-short check-tsan check-valgrind \
	model-long

all: $(BUILD)/codesrcfs

$(BUILD)/codesrcfs: $(OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c $(HDR) | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) $(HDR) $(UNIT_HDR) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

$(BUILD)/tests:
	mkdir -p $@

# One line naming what is missing, where the compiler would stop at the first #include.
build-deps:
	$(if $(BUILD_MISSING),$(error codesrcfs: missing build packages: $(BUILD_MISSING) — run: make deps))

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BUILD)/codesrcfs
	CODESRCFS_BIN=$(abspath $(BUILD)/codesrcfs) $(PYTHON) -m pytest -q -p no:cacheprovider \
		--ignore=tests/integration/test_valgrind.py \
		--ignore=tests/integration/test_deb_package.py tests/integration

check-plain: deps-test
	$(MAKE) all unit integration

check-asan: deps-test
	$(MAKE) BUILD=build/asan SANITIZE="$(ASAN)" CFLAGS="-O1 -g" all unit integration

# The style check comes first: it is the cheapest, and builds nothing.
check: format-check check-plain check-asan check-tsan fuzz-short

demo: deps-demo all
	./contrib/demo.sh $(abspath $(BUILD)/codesrcfs)

deps:
	@./contrib/deps.sh $(DEB_BUILD)

deps-test:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_TEST)

deps-demo:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_DEMO)

deps-bench:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_BENCH)

install: all
	install -D -m 0755 $(BUILD)/codesrcfs $(DESTDIR)$(BINDIR)/codesrcfs
	install -D -m 0644 docs/codesrcfs.1 $(DESTDIR)$(MANDIR)/man1/codesrcfs.1
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PREFIX)/lib/systemd/user \
		$(DESTDIR)$(PREFIX)/share/codesrcfs
	sed 's|@BINDIR@|$(BINDIR)|g; s|@SBINDIR@|$(SBINDIR)|g' contrib/mount.codesrcfs \
		>$(DESTDIR)$(SBINDIR)/mount.codesrcfs
	chmod 0755 $(DESTDIR)$(SBINDIR)/mount.codesrcfs
	ln -sf mount.codesrcfs $(DESTDIR)$(SBINDIR)/mount.fuse.codesrcfs
	sed 's|/usr/bin/codesrcfs|$(BINDIR)/codesrcfs|g' contrib/codesrcfs.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/user/codesrcfs.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/user/codesrcfs.service
	install -m 0755 contrib/clone-all.sh $(DESTDIR)$(PREFIX)/share/codesrcfs/clone-all.sh
	install -m 0644 contrib/fstab.example $(DESTDIR)$(PREFIX)/share/codesrcfs/fstab.example

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/codesrcfs $(DESTDIR)$(MANDIR)/man1/codesrcfs.1 \
		$(DESTDIR)$(SBINDIR)/mount.codesrcfs $(DESTDIR)$(SBINDIR)/mount.fuse.codesrcfs \
		$(DESTDIR)$(PREFIX)/lib/systemd/user/codesrcfs.service \
		$(DESTDIR)$(PREFIX)/share/codesrcfs/clone-all.sh \
		$(DESTDIR)$(PREFIX)/share/codesrcfs/fstab.example
	rmdir $(DESTDIR)$(PREFIX)/share/codesrcfs 2>/dev/null || true

# Every C file, with the project's .clang-format (docs/hacking.md).
FORMAT_SRC = $(wildcard src/*.c src/*.h src/providers/*.c src/providers/*.h include/*.h \
	     tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@./contrib/deps.sh $(DEB_FORMAT)
	clang-format --dry-run -Werror $(FORMAT_SRC)

clean:
	rm -rf build

# ---- hardening: fuzzing, ThreadSanitizer, valgrind -------------------------------------
# libFuzzer needs clang. The library is built with coverage instrumentation but without
# libFuzzer's main (fuzzer-no-link); each target links the runtime. Every target runs on a
# copy of its seed corpus so that what it discovers never lands in the repository.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -g -O1 $(filter-out $(CFLAGS) $(SANITIZE),$(ALL_CFLAGS)) $(FUZZ_SAN)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ := $(filter-out %/main.o,$(SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o))

$(FUZZ_BUILD)/obj/%.o: src/%.c $(HDR) | build-deps
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ) $(HDR)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LDLIBS)

# Reached only through the pattern rule above, so make would delete them after each link.
.SECONDARY: $(FUZZ_LIB_OBJ)

# A failing run leaves its input in build/fuzz/crash-* (or leak-*, timeout-*); the log's
# tail shows the report. Replay with: build/fuzz/<target> build/fuzz/crash-<sha1>
fuzz: deps-test $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_NAMES); do \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		rm -rf $(FUZZ_BUILD)/corpus-$$t; \
		cp -r tests/fuzz/corpus/$$t $(FUZZ_BUILD)/corpus-$$t; \
		$(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-max_len=16384 -artifact_prefix=$(FUZZ_BUILD)/ \
			$(FUZZ_BUILD)/corpus-$$t >$(FUZZ_BUILD)/$$t.log 2>&1 || \
			{ tail -n 60 $(FUZZ_BUILD)/$$t.log; echo "fuzz $$t failed"; exit 1; }; \
		grep -h '^Done\|^#[0-9]*.*DONE' $(FUZZ_BUILD)/$$t.log | tail -n 1; \
	done

fuzz-short:
	$(MAKE) fuzz FUZZ_SECONDS=10

bench: deps-bench all
	$(PYTHON) contrib/bench.py --binary $(abspath $(BUILD)/codesrcfs) $(BENCH_ARGS)

# The tree's model-based stress test (tests/unit/test_tree_model.c) runs a few thousand
# steps in `make unit`, plain and under ASan; this runs many more under ASan and UBSan, on
# the seed CODESRCFS_MODEL_SEED (its default otherwise). A failure prints its seed and
# step; CODESRCFS_MODEL_SEED=<seed> CODESRCFS_MODEL_STEPS=<steps> replays it, though it may
# take a few runs: the pager's page threads decide a stream's steps.
MODEL_STEPS ?= 200000

model-long: deps
	$(MAKE) BUILD=build/asan SANITIZE="$(ASAN)" CFLAGS="-O1 -g" build/asan/tests/test_tree_model
	CODESRCFS_MODEL_STEPS=$${CODESRCFS_MODEL_STEPS:-$(MODEL_STEPS)} build/asan/tests/test_tree_model

# ThreadSanitizer on what is shared between threads: the tree cache (test_tree, and
# test_tree_model's readers against a thread that changes the world), the HTTP
# pool (test_http), a mount under many parallel readers and the checks at mount (a thread
# per cloud). ASLR off (setarch -R): TSan's
# fixed shadow layout can collide with mappings randomised over this kernel's 28+ bits;
# the personality is inherited by pytest's children, so the daemon runs with it too. The
# fixtures fail a test whose daemon log holds "WARNING: ThreadSanitizer".
TSAN_RUN := setarch $(shell uname -m) -R env TSAN_OPTIONS="second_deadlock_stack=1"

check-tsan: deps-test
	$(MAKE) BUILD=build/tsan SANITIZE="-fsanitize=thread" CFLAGS="-O1 -g" all \
		build/tsan/tests/test_tree build/tsan/tests/test_tree_model build/tsan/tests/test_http
	$(TSAN_RUN) build/tsan/tests/test_tree
	$(TSAN_RUN) build/tsan/tests/test_tree_model
	$(TSAN_RUN) build/tsan/tests/test_http
	CODESRCFS_BIN=$(abspath build/tsan/codesrcfs) $(TSAN_RUN) $(PYTHON) -m pytest -q \
		-p no:cacheprovider tests/integration/test_pai.py tests/integration/test_speed_counts.py \
		tests/integration/test_mount_checks.py tests/integration/test_churn.py \
		-k "parallel_readers or removed_entries or kernels_entries or every_cloud or one_call_each or churn_readers"

# valgrind (memcheck) on a plain -O1 build: catches what the sanitizers' builds can hide
# (uninitialised reads into libcurl/json-c/libfuse, which are not instrumented). Only
# definite leaks fail: libcurl and OpenSSL keep "still reachable" memory by design.
VALGRIND := valgrind --leak-check=full --show-leak-kinds=definite \
	    --errors-for-leak-kinds=definite --error-exitcode=1 --num-callers=30

check-valgrind: deps-test
	$(MAKE) BUILD=build/valgrind CFLAGS="-O1 -g" all
	CODESRCFS_BIN=$(abspath build/valgrind/codesrcfs) CODESRCFS_VALGRIND=1 \
		CODESRCFS_WRAPPER="$(VALGRIND)" $(PYTHON) -m pytest -q -p no:cacheprovider \
		tests/integration/test_valgrind.py

# ---- Debian package ---------------------------------------------------------------------
# `make deb` builds build/deb/codesrcfs_$(VERSION)_<arch>.deb (debian/: dh over this
# Makefile's install target) from a copy of the tree and runs lintian on it; `make
# check-deb` builds it, installs it with apt-get in a throwaway overlay of /usr, /etc and
# /var, mounts through mount(8) from the installed files and removes it (as root).
.PHONY: deb deps-deb check-deb

deps-deb:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_DEB)

deb: deps-deb
	./contrib/build-deb.sh $(VERSION) build/deb

check-deb: deps-deb deps-test
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_deb_package.py
