package board

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Monitor reads the board repeatedly and computes CPU usage between its readings. It is
// safe for concurrent use.
type Monitor struct {
	root, disk string
	mu         sync.Mutex
	prev       *CPUTimes
}

// NewMonitor returns a Monitor of the board under root ("/" on a real board), reporting the
// filesystem at diskPath (relative to root; "" for none).
func NewMonitor(root, diskPath string) *Monitor {
	return &Monitor{root: root, disk: diskPath}
}

// Read is board.Read plus CPUUsage since the previous Read.
func (m *Monitor) Read() Health {
	h := Read(m.root, m.disk)
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.CPU != nil {
		if m.prev != nil {
			if u, ok := Usage(*m.prev, *h.CPU); ok {
				h.CPUUsage = &u
			}
		}
		m.prev = h.CPU
	}
	return h
}

// Collector is a prometheus.Collector of the board's health: each scrape reads /sys and
// /proc afresh. Readings the board lacks are left out of the scrape.
type Collector struct {
	mon *Monitor

	temp, zoneTemp, throttled, throttledFlags, freq, maxFreq *prometheus.Desc
	load1, load5, load15, memTotal, memAvail, diskSize       *prometheus.Desc
	diskFree, uptime, cpuUsage                               *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for the board under root ("/" on a real board) and the
// filesystem at diskPath (relative to root; "" for none). Register it on the agent's own
// registry.
func NewCollector(root, diskPath string) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_board_"+name, help, labels, nil)
	}
	return &Collector{
		mon:            NewMonitor(root, diskPath),
		temp:           d("cpu_temperature_celsius", "Temperature of the CPU's thermal zone (the hottest zone when none is the CPU's)."),
		zoneTemp:       d("thermal_zone_temperature_celsius", "Temperature of each thermal zone, by zone type.", "type"),
		throttled:      d("throttled", "1 when the Raspberry Pi firmware reports under-voltage, frequency capping, throttling or the soft temperature limit now, else 0."),
		throttledFlags: d("throttled_flags", "The Raspberry Pi firmware's get_throttled bit field."),
		freq:           d("cpu_frequency_hertz", "Current frequency of cpu0."),
		maxFreq:        d("cpu_frequency_max_hertz", "Maximum frequency of cpu0."),
		load1:          d("load1", "Load average over one minute."),
		load5:          d("load5", "Load average over five minutes."),
		load15:         d("load15", "Load average over fifteen minutes."),
		memTotal:       d("memory_total_bytes", "Total usable memory."),
		memAvail:       d("memory_available_bytes", "Memory available for new work without swapping."),
		diskSize:       d("disk_size_bytes", "Size of the filesystem holding the configured path.", "path"),
		diskFree:       d("disk_free_bytes", "Free space available to unprivileged users on the filesystem holding the configured path.", "path"),
		uptime:         d("uptime_seconds", "Time since the board booted."),
		cpuUsage:       d("cpu_usage_ratio", "Busy fraction of all CPUs since the previous scrape."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.temp, c.zoneTemp, c.throttled, c.throttledFlags, c.freq, c.maxFreq,
		c.load1, c.load5, c.load15, c.memTotal, c.memAvail, c.diskSize, c.diskFree, c.uptime, c.cpuUsage} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	h := c.mon.Read()
	gauge := func(d *prometheus.Desc, v *float64, labels ...string) {
		if v != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, *v, labels...)
		}
	}
	bytes := func(d *prometheus.Desc, v *uint64, labels ...string) {
		if v != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(*v), labels...)
		}
	}
	gauge(c.temp, h.CPUTempC)
	seen := map[string]bool{}
	for _, z := range h.Zones {
		if !seen[z.Type] { // two zones of one type would be a duplicate series; keep the first
			seen[z.Type] = true
			gauge(c.zoneTemp, &z.TempC, z.Type)
		}
	}
	if now, ok := h.ThrottledNow(); ok {
		v := 0.0
		if now {
			v = 1
		}
		gauge(c.throttled, &v)
		f := float64(*h.Throttled)
		gauge(c.throttledFlags, &f)
	}
	gauge(c.freq, h.CPUFreqHz)
	gauge(c.maxFreq, h.CPUMaxFreqHz)
	gauge(c.load1, h.Load1)
	gauge(c.load5, h.Load5)
	gauge(c.load15, h.Load15)
	bytes(c.memTotal, h.MemTotalBytes)
	bytes(c.memAvail, h.MemAvailableBytes)
	bytes(c.diskSize, h.DiskSizeBytes, h.DiskPath)
	bytes(c.diskFree, h.DiskFreeBytes, h.DiskPath)
	gauge(c.uptime, h.UptimeSeconds)
	gauge(c.cpuUsage, h.CPUUsage)
}
