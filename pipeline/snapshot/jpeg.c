#include "jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <libswscale/swscale.h>

int snap_scale(int w, int h, const uint8_t *src, int stride, int dw, int dh, uint8_t *dst) {
	struct SwsContext *s = sws_getContext(w, h, AV_PIX_FMT_BGR24, dw, dh, AV_PIX_FMT_BGR24, SWS_AREA, NULL, NULL, NULL);
	if (!s)
		return -1;
	const uint8_t *in[4] = {src, NULL, NULL, NULL};
	int is[4] = {stride, 0, 0, 0};
	uint8_t *o[4] = {dst, NULL, NULL, NULL};
	int os[4] = {3 * dw, 0, 0, 0};
	int n = sws_scale(s, in, is, 0, h, o, os);
	sws_freeContext(s);
	return n == dh ? 0 : -1;
}

// libjpeg calls error_exit on a fatal error and must not return: jump back to snap_jpeg.
struct snap_err {
	struct jpeg_error_mgr mgr;
	jmp_buf jump;
	char *msg;
	int msg_size;
	unsigned char *buf; // jpeg_mem_dest's output: in memory, so valid after the jump
	unsigned long size;
};

static void snap_error_exit(j_common_ptr c) {
	struct snap_err *e = (struct snap_err *)c->err;
	char buf[JMSG_LENGTH_MAX];
	(*c->err->format_message)(c, buf);
	snprintf(e->msg, e->msg_size, "%s", buf);
	longjmp(e->jump, 1);
}

static void snap_silent(j_common_ptr c, int level) {
	(void)c;
	(void)level;
}

int snap_jpeg(int w, int h, const uint8_t *src, int stride, int quality, uint8_t **out, unsigned long *size,
              char *err, int err_size) {
	struct jpeg_compress_struct c;
	struct snap_err e;
	memset(&c, 0, sizeof c);
	memset(&e, 0, sizeof e);
	c.err = jpeg_std_error(&e.mgr);
	e.mgr.error_exit = snap_error_exit;
	e.mgr.emit_message = snap_silent;
	e.msg = err;
	e.msg_size = err_size;
	if (setjmp(e.jump)) {
		jpeg_destroy_compress(&c);
		free(e.buf);
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &e.buf, &e.size);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_EXT_BGR;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.dct_method = JDCT_ISLOW;
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(src + (size_t)c.next_scanline * stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*out = e.buf;
	*size = e.size;
	return 0;
}

void snap_free(uint8_t *p) { free(p); }
