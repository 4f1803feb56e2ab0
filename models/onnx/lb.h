// lb: libswscale scaling of a YUV picture (or a crop of one) straight to a packed BGR24 picture
// of the model's letterbox size, with a cached context. Used only through letterbox.go; a
// lb is used from one goroutine at a time.
#ifndef VIGIL_LB_H
#define VIGIL_LB_H

#include <stdint.h>

typedef struct lb lb;

lb *lb_new(void);
void lb_free(lb *l);
// lb_scale scales a w x h picture (format 1: I420, 2: NV12, whose v is unused) to dw x dh
// packed BGR24 at dst (dst_stride bytes a row). Returns 0 or an AVERROR.
int lb_scale(lb *l, int format, int w, int h, const uint8_t *y, int ys, const uint8_t *u, int us, const uint8_t *v,
             int vs, int full_range, int matrix, int dw, int dh, uint8_t *dst, int dst_stride);

#endif
