/* libseccomp filters as plain BPF programs: built in a parent, where errors
 * can be reported, and installed later with one seccomp(2) call. Shared by
 * the child's filters and the worker sandbox. */
#ifndef SYSGATE_BPF_H
#define SYSGATE_BPF_H

#include <linux/filter.h>
#include <seccomp.h>

#include "util.h"

/* A context that allows by default and kills the process on a foreign ABI
 * (i386, x32: their numbers would bypass the tables). NULL on failure. */
scmp_filter_ctx bpf_filter_new(struct sg_err *err);

/* Scope cleanup for a context. */
void bpf_filter_release(scmp_filter_ctx *ctx);
#define _cleanup_filter_ __attribute__((cleanup(bpf_filter_release)))

/* Exports ctx into out->filter (malloc'd, owned by the caller). */
int bpf_export(scmp_filter_ctx ctx, struct sock_fprog *out, struct sg_err *err);

#endif
