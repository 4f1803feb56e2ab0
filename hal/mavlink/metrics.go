package mavlink

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descLinkUp = prometheus.NewDesc("vigil_mavlink_link_up",
		"Whether an autopilot HEARTBEAT arrived within the link timeout (1) or not (0).", nil, nil)
	descLinkLosses = prometheus.NewDesc("vigil_mavlink_link_losses_total",
		"Times the MAVLink link went from up to down.", nil, nil)
	descParseErrors = prometheus.NewDesc("vigil_mavlink_parse_errors_total",
		"MAVLink frames that could not be parsed (bad magic, length, checksum or payload).", nil, nil)
	descIgnored = prometheus.NewDesc("vigil_mavlink_ignored_total",
		"MAVLink frames ignored: unsigned or wrongly signed (reason unsigned, with a signing key), or from a system other than the pinned one (foreign).", []string{"reason"}, nil)
	descRejected = prometheus.NewDesc("vigil_mavlink_rejected_messages_total",
		"Parsed MAVLink messages dropped for impossible values.", nil, nil)
	descMessages = prometheus.NewDesc("vigil_mavlink_messages_total",
		"MAVLink messages received, by message name.", []string{"type"}, nil)
	descAge = prometheus.NewDesc("vigil_mavlink_message_age_seconds",
		"Seconds since the last MAVLink message of each name.", []string{"type"}, nil)
	descFix = prometheus.NewDesc("vigil_mavlink_gps_fix_type",
		"GPS fix type of the newest GPS_RAW_INT (MAVLink GPS_FIX_TYPE; -1 unknown).", nil, nil)
	descSats = prometheus.NewDesc("vigil_mavlink_gps_satellites",
		"Satellites visible in the newest GPS_RAW_INT.", nil, nil)
)

// collector exposes a Client's state to Prometheus at scrape time.
type collector struct{ c *Client }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinkUp, descLinkLosses, descParseErrors, descIgnored, descRejected, descMessages, descAge, descFix, descSats} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c := k.c
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	up := 0.0
	if c.linkUp {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descLinkUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descLinkLosses, prometheus.CounterValue, float64(c.linkLosses))
	ch <- prometheus.MustNewConstMetric(descParseErrors, prometheus.CounterValue, float64(c.parseErrs))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(c.rejected))
	ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(c.unsigned), "unsigned")
	ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(c.foreign), "foreign")
	for name, n := range c.msgCount {
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(c.msgLast[name]).Seconds(), name)
	}
	fix, sats := float64(FixUnknown), 0.0
	if c.gps.len() > 0 {
		g := c.gps.newest()
		fix, sats = float64(g.fix), float64(g.sats)
	}
	ch <- prometheus.MustNewConstMetric(descFix, prometheus.GaugeValue, fix)
	ch <- prometheus.MustNewConstMetric(descSats, prometheus.GaugeValue, sats)
}
