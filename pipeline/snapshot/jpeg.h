// jpeg: the snapshot encoder's C half: libswscale downscaling of packed BGR pictures and
// libjpeg-turbo compression straight from BGR. Used only through encode.go.
#ifndef VIGIL_SNAPSHOT_JPEG_H
#define VIGIL_SNAPSHOT_JPEG_H

#include <stddef.h>
#include <stdint.h>

// snap_scale area-averages a w x h packed BGR24 picture (stride bytes a row) to dw x dh at dst
// (3*dw bytes a row). Returns 0, or -1 when libswscale cannot.
int snap_scale(int w, int h, const uint8_t *src, int stride, int dw, int dh, uint8_t *dst);

// snap_jpeg compresses a w x h packed BGR24 picture (stride bytes a row) at quality 1-100.
// On success it returns 0 and *out (free with snap_free) holds *size bytes; otherwise it
// returns -1 and err holds libjpeg's message.
int snap_jpeg(int w, int h, const uint8_t *src, int stride, int quality, uint8_t **out, unsigned long *size,
              char *err, int err_size);

void snap_free(uint8_t *p);

#endif
