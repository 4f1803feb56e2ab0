// vf: a libavformat demuxer that returns the packets of a file's best video stream.
// Used only through file.go; every function is called from one goroutine at a time.
#ifndef VIGIL_VF_H
#define VIGIL_VF_H

#include <stdint.h>

typedef struct vf vf;

// Codes vf_open returns besides AVERROR values.
#define VF_NO_VIDEO 1 // opened, but no video stream in it

#define VF_NOPTS INT64_MIN

typedef struct {
	const char *format;     // demuxer name
	const char *codec;      // FFmpeg decoder name (or codec name when FFmpeg has no decoder)
	const uint8_t *extra;   // codec extradata, valid until vf_close
	int extra_size;
	int width, height;
	int64_t start;          // stream start time, microseconds, VF_NOPTS when unknown
	int64_t frame_dur;      // microseconds, 0 when unknown
} vf_info;

typedef struct {
	const uint8_t *data; // valid until the next vf_read or vf_close
	int size;
	int key;
	int64_t pts, dts, dur; // microseconds, VF_NOPTS (pts, dts) or 0 (dur) when unknown
} vf_packet;

void vf_quiet(void);
int vf_open(const char *url, vf **out, vf_info *info);
int vf_read(vf *f, vf_packet *p);
void vf_close(vf *f);
int vf_eof(void);
void vf_strerror(int code, char *buf, int size);

#endif
