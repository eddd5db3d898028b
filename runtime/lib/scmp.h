/* libseccomp's <seccomp.h> is shadowed by our own seccomp.h on the -Iruntime/lib path; include this
 * one with angle brackets so #include_next continues the search after runtime/lib. */
#ifndef SBX_SCMP_H
#define SBX_SCMP_H
#include_next <seccomp.h>
#endif
