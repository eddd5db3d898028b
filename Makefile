# sbx — see README.md. `make` builds, `make check` tests, `make run` starts apid, `make bench`,
# `make fuzz` runs the libFuzzer harnesses of tests/fuzz.
PREFIX     ?= /usr/local
BUILD      ?= build
SBX_IMAGES ?= /var/lib/sbx/images
CC         ?= cc
PKGS       := libseccomp libcap jansson
APID_PKGS  := libmicrohttpd sqlite3 libnl-3.0 libnl-route-3.0 libnftables
WERROR     ?= -Werror
SAN        ?=
CFLAGS     ?= -O2 -g
CFLAGS     += -std=gnu11 -Wall -Wextra $(WERROR) -Wno-unused-parameter -D_GNU_SOURCE \
              -fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2 $(SAN) \
              -Iruntime/include -Iruntime/lib -I$(BUILD)/gen -MMD -MP
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
APID_CFLAGS = $(shell pkg-config --cflags $(APID_PKGS) 2>/dev/null)
APID_LIBS   = $(shell pkg-config --libs $(APID_PKGS) 2>/dev/null) -lpthread
# Images (pull, load, unpack): only sbx-image, apid and the unit tests link these (apid's client
# to the agents is libcurl too); sbxrun runs images from the store with jansson alone, so its
# static, per-start binary stays as it was.
IMAGE_PKGS := libarchive libcrypto libcurl
IMAGE_LIBS  = $(shell pkg-config --libs $(IMAGE_PKGS) 2>/dev/null)
NL_LIBS     = $(shell pkg-config --libs libnl-3.0 libnl-route-3.0 2>/dev/null) -lpthread
LDFLAGS    += $(SAN)
# sbxrun and sbx-launcher run once per sandbox, so they are linked statically (static-pie: ASLR
# stays): no dynamic loader resolving symbols at every start, fewer mappings to copy when they
# fork. sbxrun /bin/true 8.5 -> 7.5 ms (docs/benchmarks.md). Sanitizer builds need the dynamic
# loader; `make STATIC=` links dynamically. The few NSS lookups (getpwuid for /etc/subuid names,
# libnl's protocol names) then load the installed glibc's NSS modules, as a static glibc does;
# sbx is built where it runs, so those match.
STATIC     ?= $(if $(SAN),,-static-pie)
RT_LIBS     = $(shell pkg-config --libs $(if $(STATIC),--static) $(PKGS) 2>/dev/null)
RT_NL_LIBS  = $(shell pkg-config --libs $(if $(STATIC),--static) libnl-3.0 libnl-route-3.0 2>/dev/null) -lpthread
# ld's notes about those NSS calls ("Using 'getpwuid' in statically linked applications ...") are
# expected: they are left out of the output, anything else ld says is shown.
link_rt = $(CC) $(STATIC) $(LDFLAGS) -o $@ $^ $(1) 2>$@.ld || { cat $@.ld >&2; rm -f $@.ld; exit 1; }; \
	grep -v 'statically linked applications requires\|: in function ' $@.ld >&2; rm -f $@.ld

LIB_SRC    := $(wildcard runtime/lib/*.c)
CLI_SRC    := $(wildcard runtime/cli/*.c)
APID_SRC   := $(filter-out apid/main.c,$(wildcard apid/*.c))
AGENT_SRC  := $(filter-out apid/agent/main.c,$(wildcard apid/agent/*.c))
UNIT_SRC   := $(wildcard tests/unit/*.c)
# The client CLI: every client/*.c (the MCP server, client/mcp.c, joins it when present).
SBX_SRC    := $(wildcard client/*.c)
PROFILES   := $(sort $(wildcard profiles/*.json profiles/caps/*.json))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ    := $(call obj,$(LIB_SRC)) $(BUILD)/obj/gen/profiles.o
CLI_OBJ    := $(call obj,$(CLI_SRC))
APID_OBJ   := $(call obj,$(APID_SRC))
AGENT_OBJ  := $(call obj,$(AGENT_SRC))
UNIT_OBJ   := $(call obj,$(UNIT_SRC))
SBX_OBJ    := $(call obj,$(SBX_SRC))

IMG_SRC    := $(wildcard runtime/image/*.c)
IMG_OBJ    := $(call obj,$(IMG_SRC))

BINS := $(BUILD)/bin/sbxrun $(BUILD)/bin/sbx-image $(BUILD)/bin/sbx-probe
ifneq ($(wildcard apid/main.c),)
BINS += $(BUILD)/bin/sbx-apid $(BUILD)/bin/sbx-launcher
endif
ifneq ($(SBX_SRC),)
BINS += $(BUILD)/bin/sbx
endif
ifneq ($(wildcard apid/agent/main.c),)
BINS += $(BUILD)/bin/sbx-agent
endif

# The stdio MCP bridge (client/mcp.c) with a bare main, for tests/api/t_mcp.sh; the sbx CLI
# links the same file for `sbx mcp`. Not installed.
TEST_BINS := $(BUILD)/bin/sbx-mcp-test

.PHONY: all deps deps-run deps-check deps-bench install rootfs check unit run bench profile asan \
        asan-build format clean vm-check fuzz fuzz-build
all: $(BINS) $(TEST_BINS) $(BUILD)/lib/libsbx.a

# Debian packages by what needs them (scripts/install-deps.sh): `make run` installs only what
# building and running need; the test-only ones (QEMU and a kernel, containerd, crun, runc, bwrap,
# registries, clang, load generators) come with `make check`, `make bench` or `make deps`.
deps:
	@scripts/install-deps.sh
deps-run:
	@scripts/install-deps.sh run
deps-check:
	@scripts/install-deps.sh check
deps-bench:
	@scripts/install-deps.sh bench

$(BUILD)/gen/profiles.c: $(PROFILES) scripts/embed.sh
	@mkdir -p $(@D)
	scripts/embed.sh $@ $(PROFILES)

$(BUILD)/obj/gen/profiles.o: $(BUILD)/gen/profiles.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/apid/%.o: apid/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iapid -Iapid/agent $(PKG_CFLAGS) $(APID_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden -Iapid -Iapid/agent $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/lib/libsbx.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/sbxrun: $(CLI_OBJ) $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(call link_rt,$(RT_LIBS))

$(BUILD)/bin/sbx-apid: $(BUILD)/obj/apid/main.o $(APID_OBJ) $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(APID_LIBS) $(IMAGE_LIBS)

# `sbxrun pull|images|rmi|load|image` exec this (see runtime/image/main.c): dynamic, with libcurl,
# libarchive and OpenSSL, none of which the per-start path needs.
$(BUILD)/bin/sbx-image: $(IMG_OBJ) $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(IMAGE_LIBS)

# Forked for every sandbox, so it links libsbx and libnl only (see apid/launcher/main.c).
$(BUILD)/bin/sbx-launcher: $(BUILD)/obj/apid/launcher/main.o $(BUILD)/obj/apid/netlink.o $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(call link_rt,$(RT_LIBS) $(RT_NL_LIBS))

# The agent runs in any rootfs, even one without a libc, so it is linked statically, with a static
# jansson (Debian's libjansson-dev ships the .a) and the two files of libsbx that need nothing but
# libc and jansson, shared with apid and the client (strutil: RFC 3339, percent-decoding,
# constant-time compare, UTF-8-safe JSON text; ws_frame: WebSocket frame heads). libsbx.a would
# give the same two members today; naming them keeps the line drawn: an agent call into the rest
# of libsbx (utils, error, and the libraries and NSS lookups behind them) fails to link rather
# than silently growing a binary that every sandbox maps.
AGENT_SHARED := $(BUILD)/obj/runtime/lib/strutil.o $(BUILD)/obj/runtime/lib/ws_frame.o
$(BUILD)/bin/sbx-agent: $(BUILD)/obj/apid/agent/main.o $(AGENT_OBJ) $(AGENT_SHARED)
	@mkdir -p $(@D)
	$(CC) $(if $(SAN),$(LDFLAGS),-static $(LDFLAGS)) -o $@ $^ \
		$(shell pkg-config --libs $(if $(SAN),,--static) jansson 2>/dev/null)

$(BUILD)/bin/sbx-mcp-test: $(BUILD)/obj/tests/api/mcp_stdio_main.o $(BUILD)/obj/client/mcp.o $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libcurl jansson 2>/dev/null) -lpthread

# The client: dynamic, libcurl + jansson; libsbx only for the error and string helpers.
$(BUILD)/obj/client/%.o: client/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden $(PKG_CFLAGS) $(shell pkg-config --cflags libcurl 2>/dev/null) -c -o $@ $<

$(BUILD)/bin/sbx: $(SBX_OBJ) $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs libcurl 2>/dev/null)

# Static helper copied into sandboxes by the integration and security tests.
$(BUILD)/bin/sbx-probe: tests/integration/probe.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O1 -Wall -static -o $@ $<

$(BUILD)/bin/unit-tests: $(UNIT_OBJ) $(AGENT_OBJ) $(APID_OBJ) $(BUILD)/lib/libsbx.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(if $(APID_OBJ),$(APID_LIBS)) $(IMAGE_LIBS) -lcunit -lpthread

unit: $(BUILD)/bin/unit-tests
	$(BUILD)/bin/unit-tests

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/sbx/profiles/caps
	install -m 755 $(filter-out $(BUILD)/bin/sbx-probe,$(BINS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard profiles/*.json) $(DESTDIR)$(PREFIX)/share/sbx/profiles/
	install -m 644 $(wildcard profiles/caps/*.json) $(DESTDIR)$(PREFIX)/share/sbx/profiles/caps/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 client/sbx.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/sbx

rootfs: all
	SBX_IMAGES=$(SBX_IMAGES) rootfs/build-images.sh

check: deps-check
	$(MAKE) all $(BUILD)/bin/unit-tests
	$(MAKE) rootfs
	tests/run-tests.sh

vm-check:
	@scripts/install-deps.sh vm
	$(MAKE) all $(BUILD)/bin/unit-tests
	tests/vm/run-in-vm.sh

run: deps-run
	$(MAKE) all
	$(MAKE) rootfs
	exec $(BUILD)/bin/sbx-apid --pool local/busybox:4

# Each script is bounded in time and removes what it creates; apid runs in private netns. The
# last table collects every figure with its goal and its ratio to the best peer.
bench: deps-bench
	$(MAKE) all
	$(MAKE) rootfs
	rm -f $(BUILD)/bench-results.tsv
	export SBX_BENCH_RESULTS=$(CURDIR)/$(BUILD)/bench-results.tsv && \
	tests/bench/run.sh && \
	N=100 tests/bench/phases.sh && \
	bash tests/bench/cgjoin.sh && \
	bash tests/bench/agent.sh && \
	bash tests/bench/proxy.sh && \
	bash tests/bench/cli.sh && \
	bash tests/bench/apid.sh && \
	N=$${N:-100} bash tests/bench/density.sh && \
	bash tests/bench/pull.sh && \
	bash tests/bench/egress.sh
	@echo; echo "== summary ($(BUILD)/bench-results.tsv)"
	@tests/bench/summary.sh $(BUILD)/bench-results.tsv

# perf profile of sbxrun and of apid's cold create (CPU by process, syscall and symbol).
profile: deps-bench
	$(MAKE) all
	$(MAKE) rootfs
	bash tests/bench/profile.sh

# Warnings are not errors here: GCC reports false stringop-overread positives under ASan.
# `make check` runs the runtime and API suites against these binaries too (tests/run-tests.sh asan).
asan-build:
	$(MAKE) BUILD=build/asan WERROR= SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" all build/asan/bin/unit-tests

asan: asan-build
	ASAN_OPTIONS=detect_leaks=1 build/asan/bin/unit-tests

# libFuzzer harnesses, one per parser family: tests/fuzz/fuzz_NAME.c becomes $(BUILD)/fuzz/NAME
# (README, Tests). Every source they may need is compiled once more with clang, ASan, UBSan (any
# report aborts, so the fuzzer sees it) and the fuzzer's coverage into three archives, and each
# harness takes from them what it uses. `make fuzz` runs each one FUZZ_SECONDS in turn (new
# inputs go to $(BUILD)/fuzz/corpus-NAME; the seeds in tests/fuzz/corpus stay as they are);
# `make fuzz-NAME` runs one; `tests/run-tests.sh fuzz` is the bounded run of `make check`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 -std=gnu11 -Wall -Wextra $(WERROR) -Wno-unused-parameter -D_GNU_SOURCE \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Iruntime/include -Iruntime/lib -Iapid \
                -Iapid/agent -I$(BUILD)/gen -MMD -MP
FUZZ_NAMES   := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(addprefix $(BUILD)/fuzz/,$(FUZZ_NAMES))
fuzz_obj      = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(1))
FUZZ_ARCHIVES := $(BUILD)/fuzz/libapid.a $(BUILD)/fuzz/libagent.a $(BUILD)/fuzz/libsbx.a

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) $(APID_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/obj/gen/profiles.o: $(BUILD)/gen/profiles.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/libsbx.a: $(call fuzz_obj,$(LIB_SRC)) $(BUILD)/fuzz/obj/gen/profiles.o
$(BUILD)/fuzz/libapid.a: $(call fuzz_obj,$(APID_SRC))
$(BUILD)/fuzz/libagent.a: $(call fuzz_obj,$(AGENT_SRC))
$(FUZZ_ARCHIVES):
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_ARCHIVES)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) $(APID_LIBS) $(IMAGE_LIBS) -lm

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_NAMES)

fuzz-%: $(BUILD)/fuzz/%
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $*

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
