#include "vf.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/mathematics.h>

struct vf {
	AVFormatContext *fmt;
	AVPacket *pkt;
	int vidx;
	AVRational tb;
};

static const AVRational us = {1, 1000000};

void vf_quiet(void) { av_log_set_level(AV_LOG_FATAL); }
int vf_eof(void) { return AVERROR_EOF; }
void vf_strerror(int code, char *buf, int size) { av_strerror(code, buf, size); }

static int64_t to_us(int64_t t, AVRational tb) {
	return t == AV_NOPTS_VALUE ? VF_NOPTS : av_rescale_q(t, tb, us);
}

int vf_open(const char *url, vf **out, vf_info *info) {
	vf *f = av_mallocz(sizeof(vf));
	if (!f)
		return AVERROR(ENOMEM);
	AVDictionary *opts = NULL;
	// a local file only: no playlist or concat file may make FFmpeg open anything else
	av_dict_set(&opts, "protocol_whitelist", "file", 0);
	int ret = avformat_open_input(&f->fmt, url, NULL, &opts);
	av_dict_free(&opts);
	if (ret < 0)
		goto fail;
	ret = avformat_find_stream_info(f->fmt, NULL);
	if (ret < 0)
		goto fail;
	ret = av_find_best_stream(f->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (ret == AVERROR_STREAM_NOT_FOUND) {
		ret = VF_NO_VIDEO;
		goto fail;
	}
	if (ret < 0)
		goto fail;
	f->vidx = ret;
	AVStream *st = f->fmt->streams[f->vidx];
	if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) { // cover art of an audio file
		ret = VF_NO_VIDEO;
		goto fail;
	}
	f->tb = st->time_base;
	f->pkt = av_packet_alloc();
	if (!f->pkt) {
		ret = AVERROR(ENOMEM);
		goto fail;
	}
	AVCodecParameters *par = st->codecpar;
	const AVCodec *dec = avcodec_find_decoder(par->codec_id);
	info->format = f->fmt->iformat->name;
	info->codec = dec ? dec->name : avcodec_get_name(par->codec_id);
	info->extra = par->extradata;
	info->extra_size = par->extradata_size;
	info->width = par->width;
	info->height = par->height;
	info->start = to_us(st->start_time, f->tb);
	AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
	info->frame_dur = rate.num > 0 && rate.den > 0 ? av_rescale_q(1, av_inv_q(rate), us) : 0;
	*out = f;
	return 0;
fail:
	vf_close(f);
	return ret;
}

int vf_read(vf *f, vf_packet *p) {
	for (;;) {
		av_packet_unref(f->pkt);
		int ret = av_read_frame(f->fmt, f->pkt);
		if (ret < 0)
			return ret;
		if (f->pkt->stream_index != f->vidx || f->pkt->size <= 0)
			continue;
		p->data = f->pkt->data;
		p->size = f->pkt->size;
		p->key = (f->pkt->flags & AV_PKT_FLAG_KEY) != 0;
		p->pts = to_us(f->pkt->pts, f->tb);
		p->dts = to_us(f->pkt->dts, f->tb);
		p->dur = f->pkt->duration > 0 ? av_rescale_q(f->pkt->duration, f->tb, us) : 0;
		return 0;
	}
}

void vf_close(vf *f) {
	if (!f)
		return;
	av_packet_free(&f->pkt);
	avformat_close_input(&f->fmt);
	av_free(f);
}
