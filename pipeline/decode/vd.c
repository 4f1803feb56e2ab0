#include "vd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/hwcontext.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

struct vd {
	AVCodecContext *ctx;
	AVPacket *pkt;
	AVFrame *frm;
	struct SwsContext *sws; // pictures in formats other than I420/NV12 -> I420
	enum AVPixelFormat hw_fmt; // the hardware surface format, AV_PIX_FMT_NONE in software
};

void vd_quiet(void) { av_log_set_level(AV_LOG_FATAL); }
int vd_eagain(void) { return AVERROR(EAGAIN); }
int vd_eof(void) { return AVERROR_EOF; }
void vd_strerror(int code, char *buf, int size) { av_strerror(code, buf, size); }

// get_hw_format picks the hardware surface format when the stream can be decoded on it, else
// the first software format offered (libavcodec then decodes in software).
static enum AVPixelFormat get_hw_format(AVCodecContext *ctx, const enum AVPixelFormat *fmts) {
	vd *d = ctx->opaque;
	for (const enum AVPixelFormat *p = fmts; *p != AV_PIX_FMT_NONE; p++)
		if (*p == d->hw_fmt)
			return *p;
	for (const enum AVPixelFormat *p = fmts; *p != AV_PIX_FMT_NONE; p++) {
		const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(*p);
		if (desc && !(desc->flags & AV_PIX_FMT_FLAG_HWACCEL))
			return *p;
	}
	return AV_PIX_FMT_NONE;
}

static AVCodecContext *alloc_ctx(const AVCodec *codec, const uint8_t *extra, int extra_size, int width, int height,
                                 int threads) {
	AVCodecContext *ctx = avcodec_alloc_context3(codec);
	if (!ctx)
		return NULL;
	if (extra_size > 0) {
		ctx->extradata = av_mallocz(extra_size + AV_INPUT_BUFFER_PADDING_SIZE);
		if (!ctx->extradata) {
			avcodec_free_context(&ctx);
			return NULL;
		}
		memcpy(ctx->extradata, extra, extra_size);
		ctx->extradata_size = extra_size;
	}
	// some decoders (the MPEG-4 family from AVI) learn the picture size only from the container
	ctx->width = width;
	ctx->height = height;
	ctx->thread_count = threads;
	ctx->pkt_timebase = (AVRational){1, 1000000};
	return ctx;
}

static void note(char *buf, int size, const char *fmt, const char *a, int err) {
	char e[AV_ERROR_MAX_STRING_SIZE] = "";
	if (err)
		av_strerror(err, e, sizeof e);
	size_t n = strlen(buf);
	if ((int)n >= size - 1)
		return;
	snprintf(buf + n, size - n, "%s", n ? "; " : "");
	n = strlen(buf);
	snprintf(buf + n, size - n, fmt, a, e);
}

// try_vaapi opens the decoder on a VAAPI device; 0 on success, else it appends why not to msg.
static int try_vaapi(vd *d, const AVCodec *codec, const uint8_t *extra, int extra_size, int width, int height,
                     int threads, char *msg, int msg_size) {
	enum AVHWDeviceType type = av_hwdevice_find_type_by_name("vaapi");
	if (type == AV_HWDEVICE_TYPE_NONE) {
		note(msg, msg_size, "vaapi: FFmpeg was built without it%s%s", "", 0);
		return -1;
	}
	d->hw_fmt = AV_PIX_FMT_NONE;
	for (int i = 0;; i++) {
		const AVCodecHWConfig *cfg = avcodec_get_hw_config(codec, i);
		if (!cfg)
			break;
		if ((cfg->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX) && cfg->device_type == type) {
			d->hw_fmt = cfg->pix_fmt;
			break;
		}
	}
	if (d->hw_fmt == AV_PIX_FMT_NONE) {
		note(msg, msg_size, "vaapi: the %s decoder cannot use it%s", codec->name, 0);
		return -1;
	}
	AVBufferRef *dev = NULL;
	int ret = av_hwdevice_ctx_create(&dev, type, NULL, NULL, 0);
	if (ret < 0) {
		d->hw_fmt = AV_PIX_FMT_NONE;
		note(msg, msg_size, "vaapi: no usable device%s (%s)", "", ret);
		return -1;
	}
	AVCodecContext *ctx = alloc_ctx(codec, extra, extra_size, width, height, threads);
	if (!ctx) {
		av_buffer_unref(&dev);
		d->hw_fmt = AV_PIX_FMT_NONE;
		return AVERROR(ENOMEM);
	}
	ctx->hw_device_ctx = dev;
	ctx->opaque = d;
	ctx->get_format = get_hw_format;
	ret = avcodec_open2(ctx, codec, NULL);
	if (ret < 0) {
		avcodec_free_context(&ctx);
		d->hw_fmt = AV_PIX_FMT_NONE;
		note(msg, msg_size, "vaapi: cannot open the decoder%s (%s)", "", ret);
		return -1;
	}
	d->ctx = ctx;
	return 0;
}

// try_v4l2m2m opens the codec's V4L2 memory-to-memory decoder (h264_v4l2m2m, ...).
static int try_v4l2m2m(vd *d, const AVCodec *codec, const uint8_t *extra, int extra_size, int width, int height,
                       char *msg, int msg_size, const char **decoder_name) {
	char name[64];
	snprintf(name, sizeof name, "%s_v4l2m2m", codec->name);
	const AVCodec *hw = avcodec_find_decoder_by_name(name);
	if (!hw) {
		note(msg, msg_size, "v4l2m2m: FFmpeg has no %s decoder%s", name, 0);
		return -1;
	}
	AVCodecContext *ctx = alloc_ctx(hw, extra, extra_size, width, height, 1);
	if (!ctx)
		return AVERROR(ENOMEM);
	int ret = avcodec_open2(ctx, hw, NULL);
	if (ret < 0) {
		avcodec_free_context(&ctx);
		note(msg, msg_size, "v4l2m2m: no usable device for %s (%s)", name, ret);
		return -1;
	}
	d->ctx = ctx;
	*decoder_name = hw->name;
	return 0;
}

int vd_open(const char *name, const uint8_t *extra, int extra_size, int width, int height, int threads,
            const char *hwaccel, vd **out, const char **decoder_name, const char **hw_used, char *hw_note,
            int hw_note_size) {
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
	*hw_used = "none";
	hw_note[0] = 0;

	vd *d = av_mallocz(sizeof(vd));
	if (!d)
		return AVERROR(ENOMEM);
	d->hw_fmt = AV_PIX_FMT_NONE;
	int ret = AVERROR(ENOMEM);
	d->pkt = av_packet_alloc();
	d->frm = av_frame_alloc();
	if (!d->pkt || !d->frm)
		goto fail;
	int auto_ = !strcmp(hwaccel, "auto");
	if (auto_ || !strcmp(hwaccel, "vaapi")) {
		ret = try_vaapi(d, codec, extra, extra_size, width, height, threads, hw_note, hw_note_size);
		if (ret == 0) {
			*hw_used = "vaapi";
			goto done;
		}
		if (ret != -1)
			goto fail;
	}
	if (auto_ || !strcmp(hwaccel, "v4l2m2m")) {
		ret = try_v4l2m2m(d, codec, extra, extra_size, width, height, hw_note, hw_note_size, decoder_name);
		if (ret == 0) {
			*hw_used = "v4l2m2m";
			goto done;
		}
		if (ret != -1)
			goto fail;
	}
	ret = AVERROR(ENOMEM);
	d->ctx = alloc_ctx(codec, extra, extra_size, width, height, threads);
	if (!d->ctx)
		goto fail;
	ret = avcodec_open2(d->ctx, codec, NULL);
	if (ret < 0)
		goto fail;
done:
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

// vd_receive takes the next picture out of the decoder as a frame of its own (a reference to
// the decoder's buffer, no copy, for I420 and NV12 pictures in memory).
int vd_receive(vd *d, vd_frame_info *info) {
	av_frame_unref(d->frm);
	int ret = avcodec_receive_frame(d->ctx, d->frm);
	if (ret < 0)
		return ret;
	AVFrame *src = d->frm;
	info->transferred = 0;
	info->converted = 0;
	if (d->hw_fmt != AV_PIX_FMT_NONE && src->format == d->hw_fmt) {
		AVFrame *sw = av_frame_alloc();
		if (!sw)
			return AVERROR(ENOMEM);
		ret = av_hwframe_transfer_data(sw, src, 0);
		if (ret >= 0)
			ret = av_frame_copy_props(sw, src);
		if (ret < 0) {
			av_frame_free(&sw);
			return ret;
		}
		av_frame_unref(src);
		av_frame_move_ref(src, sw);
		av_frame_free(&sw);
		info->transferred = 1;
	}
	int fmt = src->format, range = src->color_range == AVCOL_RANGE_JPEG;
	if (fmt == AV_PIX_FMT_YUVJ420P) {
		fmt = AV_PIX_FMT_YUV420P;
		range = 1;
	}
	AVFrame *out = av_frame_alloc();
	if (!out)
		return AVERROR(ENOMEM);
	if ((fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_NV12) && src->linesize[0] > 0 && src->linesize[1] > 0 &&
	    (fmt == AV_PIX_FMT_NV12 || src->linesize[2] > 0)) {
		av_frame_move_ref(out, src);
	} else {
		// Any other layout (4:2:2, 4:4:4, 10-bit, RGB, bottom-up) becomes I420 here.
		out->format = AV_PIX_FMT_YUV420P;
		out->width = src->width;
		out->height = src->height;
		ret = av_frame_get_buffer(out, 0);
		if (ret >= 0)
			ret = av_frame_copy_props(out, src);
		if (ret < 0) {
			av_frame_free(&out);
			return ret;
		}
		d->sws = sws_getCachedContext(d->sws, src->width, src->height, fmt, src->width, src->height,
		                              AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
		if (!d->sws) {
			av_frame_free(&out);
			return AVERROR(EINVAL);
		}
		sws_setColorspaceDetails(d->sws, sws_getCoefficients(src->colorspace), range,
		                         sws_getCoefficients(src->colorspace), range, 0, 1 << 16, 1 << 16);
		int h = sws_scale(d->sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, out->data,
		                  out->linesize);
		if (h != src->height) {
			av_frame_free(&out);
			return AVERROR(EINVAL);
		}
		fmt = AV_PIX_FMT_YUV420P;
		info->converted = 1;
	}
	info->width = out->width;
	info->height = out->height;
	int64_t pts = out->best_effort_timestamp;
	if (pts == AV_NOPTS_VALUE)
		pts = out->pts;
	info->pts = pts == AV_NOPTS_VALUE ? INT64_MIN : pts;
	info->format = fmt == AV_PIX_FMT_NV12 ? VD_FMT_NV12 : VD_FMT_I420;
	for (int i = 0; i < 3; i++) {
		info->data[i] = out->data[i];
		info->linesize[i] = out->linesize[i];
	}
	info->full_range = range;
	info->matrix = out->colorspace;
	info->frame = out;
	return 0;
}

void vd_frame_free(void *frame) {
	AVFrame *f = frame;
	av_frame_free(&f);
}

void vd_reset(vd *d) { avcodec_flush_buffers(d->ctx); }

void vd_close(vd *d) {
	if (!d)
		return;
	avcodec_free_context(&d->ctx); // frees extradata and the hardware device reference too
	av_packet_free(&d->pkt);
	av_frame_free(&d->frm);
	sws_freeContext(d->sws);
	av_free(d);
}

int vd_to_bgr(int format, int width, int height, const uint8_t *y, int ys, const uint8_t *u, int us,
              const uint8_t *v, int vs, int full_range, int matrix, uint8_t *dst, int dst_stride) {
	enum AVPixelFormat fmt = format == VD_FMT_NV12 ? AV_PIX_FMT_NV12 : AV_PIX_FMT_YUV420P;
	struct SwsContext *sws =
	    sws_getContext(width, height, fmt, width, height, AV_PIX_FMT_BGR24, SWS_BILINEAR, NULL, NULL, NULL);
	if (!sws)
		return AVERROR(EINVAL);
	// the table is indexed by AVColorSpace; unknown values fall back to BT.601
	sws_setColorspaceDetails(sws, sws_getCoefficients(matrix), full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
	                         1 << 16, 1 << 16);
	const uint8_t *src[4] = {y, u, format == VD_FMT_NV12 ? NULL : v, NULL};
	int ss[4] = {ys, us, format == VD_FMT_NV12 ? 0 : vs, 0};
	uint8_t *dd[4] = {dst, NULL, NULL, NULL};
	int ds[4] = {dst_stride, 0, 0, 0};
	int h = sws_scale(sws, src, ss, 0, height, dd, ds);
	sws_freeContext(sws);
	return h == height ? 0 : AVERROR(EINVAL);
}
