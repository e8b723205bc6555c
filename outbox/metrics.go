package outbox

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a [prometheus.Collector] of an outbox's [Stats], read at
// each scrape (never on the outbox's hot path):
//
//	netmon_outbox_records{class}            pending messages
//	netmon_outbox_bytes{class}              their stored size
//	netmon_outbox_oldest_age_seconds        age of the oldest pending message
//	netmon_outbox_in_flight                 sent, not yet acknowledged
//	netmon_outbox_appended_total            accepted messages
//	netmon_outbox_delivered_total           acknowledged messages
//	netmon_outbox_dropped_total             telemetry dropped for room
//	netmon_outbox_corrupt_total             records removed as corrupt
//	netmon_outbox_moved_aside_total         stores moved aside as unreadable
type Collector struct {
	o *Outbox

	records, bytes, age, inFlight                     *prometheus.Desc
	appended, delivered, dropped, corrupt, movedAside *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of o's Stats.
func NewCollector(o *Outbox) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("netmon_outbox_"+name, help, labels, nil)
	}
	return &Collector{
		o:          o,
		records:    d("records", "Pending (accepted, not delivered) messages.", "class"),
		bytes:      d("bytes", "Stored size of the pending messages.", "class"),
		age:        d("oldest_age_seconds", "Age of the oldest pending message; 0 when none."),
		inFlight:   d("in_flight", "Messages sent and not yet acknowledged."),
		appended:   d("appended_total", "Messages accepted."),
		delivered:  d("delivered_total", "Messages acknowledged and removed."),
		dropped:    d("dropped_total", "Telemetry messages dropped for room, and messages lost in a failed group commit."),
		corrupt:    d("corrupt_total", "Records removed because they failed their checks."),
		movedAside: d("moved_aside_total", "Stores found unreadable and moved aside."),
	}
}

// Describe sends the metrics' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.age, c.inFlight, c.appended, c.delivered, c.dropped, c.corrupt, c.movedAside} {
		ch <- d
	}
}

// Collect reads the outbox's Stats and sends them as metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.o.Stats()
	for _, cl := range []Class{Important, Telemetry} {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(s.ClassRecords[cl]), cl.String())
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.ClassBytes[cl]), cl.String())
	}
	age := 0.0
	if !s.Oldest.IsZero() {
		age = max(time.Since(s.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight))
	ch <- prometheus.MustNewConstMetric(c.appended, prometheus.CounterValue, float64(s.Appended))
	ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(s.Delivered))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(s.Corrupt))
	ch <- prometheus.MustNewConstMetric(c.movedAside, prometheus.CounterValue, float64(s.MovedAside))
}
