#include "vd.h"

#include <errno.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>

struct vd {
	AVCodecContext *ctx;
	AVPacket *pkt;
	AVFrame *frm;
	struct SwsContext *sws;
	// parameters sws was built for
	int sw, sh, sfmt, srange, scs;
};

void vd_quiet(void) { av_log_set_level(AV_LOG_FATAL); }
int vd_eagain(void) { return AVERROR(EAGAIN); }
int vd_eof(void) { return AVERROR_EOF; }
void vd_strerror(int code, char *buf, int size) { av_strerror(code, buf, size); }

int vd_open(const char *name, const uint8_t *extra, int extra_size, int width, int height, int threads, vd **out,
            const char **decoder_name) {
	const AVCodec *codec = avcodec_find_decoder_by_name(name);
	if (!codec) {
		const AVCodecDescriptor *desc = avcodec_descriptor_get_by_name(name);
		if (desc)
			codec = avcodec_find_decoder(desc->id);
	}
	if (!codec)
		return VD_ERR_NOT_FOUND;
	if (codec->type != AVMEDIA_TYPE_VIDEO)
		return VD_ERR_NOT_VIDEO;
	*decoder_name = codec->name;

	vd *d = av_mallocz(sizeof(vd));
	if (!d)
		return AVERROR(ENOMEM);
	d->sfmt = -1;
	int ret = AVERROR(ENOMEM);
	d->ctx = avcodec_alloc_context3(codec);
	d->pkt = av_packet_alloc();
	d->frm = av_frame_alloc();
	if (!d->ctx || !d->pkt || !d->frm)
		goto fail;
	if (extra_size > 0) {
		d->ctx->extradata = av_mallocz(extra_size + AV_INPUT_BUFFER_PADDING_SIZE);
		if (!d->ctx->extradata)
			goto fail;
		memcpy(d->ctx->extradata, extra, extra_size);
		d->ctx->extradata_size = extra_size;
	}
	// some decoders (the MPEG-4 family from AVI) learn the picture size only from the container
	d->ctx->width = width;
	d->ctx->height = height;
	d->ctx->thread_count = threads;
	d->ctx->pkt_timebase = (AVRational){1, 1000000};
	ret = avcodec_open2(d->ctx, codec, NULL);
	if (ret < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	vd_close(d);
	return ret;
}

int vd_send(vd *d, const uint8_t *data, int size, int64_t pts, int key) {
	int ret = av_new_packet(d->pkt, size); // zeroes the padding
	if (ret < 0)
		return ret;
	memcpy(d->pkt->data, data, size);
	d->pkt->pts = pts;
	if (key)
		d->pkt->flags |= AV_PKT_FLAG_KEY;
	ret = avcodec_send_packet(d->ctx, d->pkt);
	av_packet_unref(d->pkt);
	return ret;
}

int vd_drain(vd *d) { return avcodec_send_packet(d->ctx, NULL); }

int vd_receive(vd *d, vd_frame_info *info) {
	av_frame_unref(d->frm);
	int ret = avcodec_receive_frame(d->ctx, d->frm);
	if (ret < 0)
		return ret;
	info->width = d->frm->width;
	info->height = d->frm->height;
	int64_t pts = d->frm->best_effort_timestamp;
	if (pts == AV_NOPTS_VALUE)
		pts = d->frm->pts;
	info->pts = pts == AV_NOPTS_VALUE ? INT64_MIN : pts;
	return 0;
}

// vd_convert writes the frame vd_receive got as packed BGR24 into dst (stride bytes a row)
// and releases the frame.
int vd_convert(vd *d, uint8_t *dst, int stride) {
	AVFrame *f = d->frm;
	int fmt = f->format, range = f->color_range == AVCOL_RANGE_JPEG, cs = f->colorspace;
	switch (fmt) { // the deprecated full-range formats: same layout, full range
	case AV_PIX_FMT_YUVJ420P: fmt = AV_PIX_FMT_YUV420P; range = 1; break;
	case AV_PIX_FMT_YUVJ422P: fmt = AV_PIX_FMT_YUV422P; range = 1; break;
	case AV_PIX_FMT_YUVJ444P: fmt = AV_PIX_FMT_YUV444P; range = 1; break;
	case AV_PIX_FMT_YUVJ440P: fmt = AV_PIX_FMT_YUV440P; range = 1; break;
	case AV_PIX_FMT_YUVJ411P: fmt = AV_PIX_FMT_YUV411P; range = 1; break;
	}
	if (!d->sws || d->sw != f->width || d->sh != f->height || d->sfmt != fmt || d->srange != range || d->scs != cs) {
		sws_freeContext(d->sws);
		d->sws = sws_getContext(f->width, f->height, fmt, f->width, f->height, AV_PIX_FMT_BGR24,
		                        SWS_BILINEAR, NULL, NULL, NULL);
		if (!d->sws) {
			av_frame_unref(f);
			return AVERROR(EINVAL);
		}
		// the table is indexed by AVColorSpace; unknown values fall back to BT.601
		sws_setColorspaceDetails(d->sws, sws_getCoefficients(cs), range,
		                         sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
		d->sw = f->width;
		d->sh = f->height;
		d->sfmt = fmt;
		d->srange = range;
		d->scs = cs;
	}
	uint8_t *dd[4] = {dst, NULL, NULL, NULL};
	int ds[4] = {stride, 0, 0, 0};
	int h = sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dd, ds);
	av_frame_unref(f);
	return h == d->sh ? 0 : AVERROR(EINVAL);
}

void vd_reset(vd *d) { avcodec_flush_buffers(d->ctx); }

void vd_close(vd *d) {
	if (!d)
		return;
	avcodec_free_context(&d->ctx); // frees extradata too
	av_packet_free(&d->pkt);
	av_frame_free(&d->frm);
	sws_freeContext(d->sws);
	av_free(d);
}
