# Builds the libFuzzer harnesses with clang, apart from configure: every
# library source (src/*/*.c, src/bundle.c) and each harness compiled with
# -fsanitize=fuzzer-no-link,address,undefined, one binary per target.
#
#   make -f tests/fuzz/fuzzers.mk top_srcdir=. config_dir=build/default out=build/fuzz
#
# config_dir holds the config.h of a configured build (any will do).
# Objects land in $(out)/obj, fuzzers in $(out)/bin/fuzz_<target>.

top_srcdir ?= .
config_dir ?= $(top_srcdir)/build/default
out ?= $(top_srcdir)/build/fuzz
FUZZ_CC ?= clang
PKG_CONFIG ?= pkg-config

FUZZ_TARGETS = superblock btree spacemap check dkparse dkstate bundle
# Harnesses that read metadata images share image.c.
image_targets = btree spacemap check

FUZZ_CFLAGS ?= -g -O1
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
PKGS = json-c blkid devmapper zlib
CPPFLAGS_ALL = -I$(top_srcdir)/src -I$(top_srcdir)/tests/fuzz -I$(config_dir) \
	$(shell $(PKG_CONFIG) --cflags $(PKGS))
CFLAGS_ALL = -std=c11 $(FUZZ_CFLAGS) $(SANITIZE) -fsanitize=fuzzer-no-link
LIBS_ALL = $(shell $(PKG_CONFIG) --libs $(PKGS)) -laio -lpthread

lib_srcs := $(sort $(wildcard $(top_srcdir)/src/*/*.c)) $(top_srcdir)/src/bundle.c
lib_objs := $(patsubst $(top_srcdir)/%.c,$(out)/obj/%.o,$(lib_srcs))
fuzz_lib := $(out)/obj/libdmrescue-fuzz.a

all: $(addprefix $(out)/bin/fuzz_,$(FUZZ_TARGETS))

$(out)/obj/%.o: $(top_srcdir)/%.c $(config_dir)/config.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(WARN) -MMD -MP -c -o $@ $<

# The library's warnings belong to its own build; the harnesses' here.
WARN = -w
$(out)/obj/tests/fuzz/%.o: WARN = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter

$(fuzz_lib): $(lib_objs)
	rm -f $@
	ar cr $@ $^

common_objs = $(out)/obj/tests/fuzz/fuzz_common.o
$(addprefix $(out)/bin/fuzz_,$(image_targets)): $(out)/obj/tests/fuzz/image.o

$(out)/bin/fuzz_%: $(out)/obj/tests/fuzz/fuzz_%.o $(common_objs) $(fuzz_lib)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(SANITIZE) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(fuzz_lib) $(LIBS_ALL)

-include $(lib_objs:.o=.d) $(wildcard $(out)/obj/tests/fuzz/*.d)

.PHONY: all
.SECONDARY:
