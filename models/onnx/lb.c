#include "lb.h"

#include <errno.h>

#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>

struct lb {
	struct SwsContext *sws;
	int range, matrix; // colour details sws was given, -1 before the first picture
};

lb *lb_new(void) {
	lb *l = av_mallocz(sizeof(lb));
	if (l) {
		l->range = -1;
		l->matrix = -1;
	}
	return l;
}

void lb_free(lb *l) {
	if (!l)
		return;
	sws_freeContext(l->sws);
	av_free(l);
}

int lb_scale(lb *l, int format, int w, int h, const uint8_t *y, int ys, const uint8_t *u, int us, const uint8_t *v,
             int vs, int full_range, int matrix, int dw, int dh, uint8_t *dst, int dst_stride) {
	enum AVPixelFormat fmt = format == 2 ? AV_PIX_FMT_NV12 : AV_PIX_FMT_YUV420P;
	// SWS_FAST_BILINEAR interpolates between the two nearest samples, also when shrinking, as
	// OpenCV's INTER_LINEAR (the resize YOLOX and most detectors are trained with) does;
	// SWS_BILINEAR widens its filter when shrinking and gives the model a softer picture
	// (fewer line crossings counted on PETS09, testvideos/score).
	struct SwsContext *s =
	    sws_getCachedContext(l->sws, w, h, fmt, dw, dh, AV_PIX_FMT_BGR24, SWS_FAST_BILINEAR, NULL, NULL, NULL);
	if (!s)
		return AVERROR(EINVAL);
	if (s != l->sws || l->range != full_range || l->matrix != matrix) {
		// the table is indexed by AVColorSpace; unknown values fall back to BT.601
		sws_setColorspaceDetails(s, sws_getCoefficients(matrix), full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1,
		                         0, 1 << 16, 1 << 16);
		l->range = full_range;
		l->matrix = matrix;
	}
	l->sws = s;
	const uint8_t *src[4] = {y, u, format == 2 ? NULL : v, NULL};
	int ss[4] = {ys, us, format == 2 ? 0 : vs, 0};
	uint8_t *dd[4] = {dst, NULL, NULL, NULL};
	int ds[4] = {dst_stride, 0, 0, 0};
	int out = sws_scale(s, src, ss, 0, h, dd, ds);
	return out == dh ? 0 : AVERROR(EINVAL);
}
