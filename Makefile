# codesrcfs — `make` builds build/codesrcfs; `make check` runs every test; `make demo`.
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
PKGS      := fuse3 libcurl json-c openssl
SANITIZE  ?=
PYTHON    := /usr/bin/python3

CFLAGS    ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -std=gnu11 -Wall -Wextra -Werror -Wshadow -Iinclude \
	     $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	     -DCODESRCFS_VERSION=\"$(VERSION)\" $(SANITIZE)
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

SRC       := $(wildcard src/*.c)
OBJ       := $(SRC:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJ   := $(filter-out $(BUILD)/obj/main.o,$(OBJ))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ASAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

DEB_BUILD := gcc make pkg-config libfuse3-dev libcurl4-openssl-dev libjson-c-dev libssl-dev \
	     uthash-dev libcmocka-dev
DEB_TEST  := fuse3 python3 python3-pytest git
DEB_DEMO  := fuse3 python3 git

.PHONY: all unit integration check check-plain check-asan demo deps deps-test deps-demo \
	install uninstall clean format bench

all: $(BUILD)/codesrcfs

$(BUILD)/codesrcfs: $(OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BUILD)/codesrcfs
	CODESRCFS_BIN=$(abspath $(BUILD)/codesrcfs) $(PYTHON) -m pytest -q -p no:cacheprovider \
		tests/integration

check-plain: deps-test
	$(MAKE) all unit integration

check-asan: deps-test
	$(MAKE) BUILD=build/asan SANITIZE="$(ASAN)" CFLAGS="-O1 -g" all unit integration

check: check-plain check-asan

demo: deps-demo all
	./contrib/demo.sh $(abspath $(BUILD)/codesrcfs)

deps:
	@./contrib/deps.sh $(DEB_BUILD)

deps-test:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_TEST)

deps-demo:
	@./contrib/deps.sh $(DEB_BUILD) $(DEB_DEMO)

install: all
	install -D -m 0755 $(BUILD)/codesrcfs $(DESTDIR)$(PREFIX)/bin/codesrcfs

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/codesrcfs

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c

clean:
	rm -rf build
