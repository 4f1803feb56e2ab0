// vd: a libavcodec video decoder that hands out its pictures as referenced YUV frames, with
// optional hardware decoding (hwaccel) and a cached swscale conversion for pictures in other
// formats. Used only through decode.go; the vd_* functions that take a vd are called from one
// goroutine at a time; vd_frame_free and vd_to_bgr from any.
#ifndef VIGIL_VD_H
#define VIGIL_VD_H

#include <stdint.h>

typedef struct vd vd;

// Codes vd_open returns besides AVERROR values.
#define VD_ERR_NOT_FOUND 1 // no decoder by that name
#define VD_ERR_NOT_VIDEO 2 // the decoder is not a video decoder

// Pixel formats of the frames vd_receive gives (models.PixelFormat's values).
#define VD_FMT_I420 1
#define VD_FMT_NV12 2

typedef struct {
	int width, height;
	int64_t pts; // microseconds, INT64_MIN when unknown
	int format;  // VD_FMT_*
	uint8_t *data[3];
	int linesize[3];
	int full_range;
	int matrix;       // AVColorSpace (ITU-T H.273 matrix_coefficients)
	int converted;    // 1 when the decoder's picture had to be converted to I420
	int transferred;  // 1 when it was copied from a hardware surface
	void *frame;      // the AVFrame holding the planes: vd_frame_free it
} vd_frame_info;

void vd_quiet(void);
// vd_open opens a decoder. hwaccel is "none", "auto", "vaapi" or "v4l2m2m"; when the asked-for
// hardware cannot be used the decoder opens in software and hw_note says why (hw_note_size
// bytes at most); hw_used is set to the hardware in use ("none" for software).
int vd_open(const char *name, const uint8_t *extra, int extra_size, int width, int height, int threads,
            const char *hwaccel, vd **out, const char **decoder_name, const char **hw_used, char *hw_note,
            int hw_note_size);
int vd_send(vd *d, const uint8_t *data, int size, int64_t pts, int key);
int vd_drain(vd *d);
int vd_receive(vd *d, vd_frame_info *info);
void vd_frame_free(void *frame);
void vd_reset(vd *d);
void vd_close(vd *d);
int vd_eagain(void);
int vd_eof(void);
void vd_strerror(int code, char *buf, int size);

// vd_to_bgr converts one YUV picture (VD_FMT_*; v unused for NV12) into packed BGR24.
int vd_to_bgr(int format, int width, int height, const uint8_t *y, int ys, const uint8_t *u, int us,
              const uint8_t *v, int vs, int full_range, int matrix, uint8_t *dst, int dst_stride);

#endif
