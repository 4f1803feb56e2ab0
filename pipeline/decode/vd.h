// vd: a libavcodec video decoder with a cached swscale conversion to packed BGR24.
// Used only through decode.go; every function is called from one goroutine at a time.
#ifndef VIGIL_VD_H
#define VIGIL_VD_H

#include <stdint.h>

typedef struct vd vd;

// Codes vd_open returns besides AVERROR values.
#define VD_ERR_NOT_FOUND 1 // no decoder by that name
#define VD_ERR_NOT_VIDEO 2 // the decoder is not a video decoder

typedef struct {
	int width, height;
	int64_t pts; // microseconds, INT64_MIN when unknown
} vd_frame_info;

void vd_quiet(void);
int vd_open(const char *name, const uint8_t *extra, int extra_size, int width, int height, int threads, vd **out,
            const char **decoder_name);
int vd_send(vd *d, const uint8_t *data, int size, int64_t pts, int key);
int vd_drain(vd *d);
int vd_receive(vd *d, vd_frame_info *info);
int vd_convert(vd *d, uint8_t *dst, int stride);
void vd_reset(vd *d);
void vd_close(vd *d);
int vd_eagain(void);
int vd_eof(void);
void vd_strerror(int code, char *buf, int size);

#endif
