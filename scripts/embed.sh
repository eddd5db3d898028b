#!/bin/sh
# Turns data files into a C table so the binaries carry their default profiles and need no
# install step: embed.sh OUT.c FILE... -> struct { name, data, len } sbx_embedded_files[].
set -eu
out=$1; shift
{
	echo '#include <stddef.h>'
	echo 'struct sbx_embedded_file { const char *name; const char *data; size_t len; };'
	i=0
	for f in "$@"; do
		printf 'static const char f%d[] = {' "$i"
		od -An -v -tx1 "$f" | tr -s ' \n' '  ' | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
		echo '0};'
		i=$((i + 1))
	done
	echo 'const struct sbx_embedded_file sbx_embedded_files[] = {'
	i=0
	for f in "$@"; do
		printf '  {"%s", f%d, sizeof(f%d) - 1},\n' "$f" "$i" "$i"
		i=$((i + 1))
	done
	echo '  {NULL, NULL, 0}};'
} > "$out.tmp"
mv "$out.tmp" "$out"
