#include "proxy.h"

#include <errno.h>

static ssize_t serve(const struct childmem *mem, const Sysgate__V1__MemRequest *req, uint8_t *buf)
{
	if (req->length == 0 || req->length > PROTO_MAX_MEM || req->length > CHILDMEM_MAX)
		return -E2BIG;
	switch (req->op) {
	case SYSGATE__V1__MEM_REQUEST__OP__READ:
		return childmem_read(mem, req->addr, buf, req->length);
	case SYSGATE__V1__MEM_REQUEST__OP__READ_CSTR:
		return childmem_read_cstr(mem, req->addr, (char *)buf, (size_t)req->length + 1);
	case SYSGATE__V1__MEM_REQUEST__OP__WRITE: {
		if (req->data.len != req->length)
			return -EINVAL;
		ssize_t n = childmem_write(mem, req->addr, req->data.data, req->data.len);
		return n < 0 ? n : 0;
	}
	default:
		return -EINVAL;
	}
}

void proxy_serve(const struct childmem *mem, const Sysgate__V1__MemRequest *req, uint8_t *buf,
		 Sysgate__V1__MemReply *reply)
{
	sysgate__v1__mem_reply__init(reply);
	reply->request_id = req->request_id;
	ssize_t n = serve(mem, req, buf);
	if (n < 0) {
		reply->error = (int32_t)-n;
		return;
	}
	reply->data.data = buf;
	reply->data.len = (size_t)n;
}
