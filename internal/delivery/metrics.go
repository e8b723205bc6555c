package delivery

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Interval is one stretch during which the robot's path was surely gone,
// as the runner applied it: from the return of the command that took it
// away (the far end set down, the address or the gateway removed) to the
// call of the one that gave it back (the far end up, the route back). A
// Gate open or a dial made inside it is the sender's, not the runner's
// slowness in noting the change; the floor it gives is a little short of
// the physical one (by the commands' own time, about a millisecond),
// which counts against the senders.
type Interval struct {
	Down, Up time.Time
}

// Message is one produced message as the server saw it.
type Message struct {
	// Created is when the producer made it.
	Created time.Time
	// Arrived is its first arrival at the server; zero if it never came.
	Arrived time.Time
	// Copies counts the copies received after the first.
	Copies int
}

// Figures are one run's results.
type Figures struct {
	// Messages is how many the producer made; Lost how many never
	// arrived (must be 0); Dups the copies received beyond the first.
	Messages, Lost, Dups int
	// P50, P95 and Max are the latency beyond the floor, over the
	// messages that arrived: first arrival minus creation, minus the
	// time from creation to the link's return for a message made while
	// the link was down.
	P50, P95, Max time.Duration
	// LatencyP95 and LatencyMax are the plain latencies, outage included.
	LatencyP95, LatencyMax time.Duration
	// Dials counts connection attempts; DownDials those whose start fell
	// inside an outage. -1 when the sender's attempts are not counted.
	Dials, DownDials int
	// DownTime is the time the path was gone, in all (over every run
	// pooled).
	DownTime time.Duration
	// UsableShare is the share of the time the path was there (from the
	// start of the run to the end of production) during which netmon's
	// Gate was open; OpenWhileDown the time it was open while the path
	// was gone. UsableShare is -1 for senders without a Gate.
	UsableShare   float64
	OpenWhileDown time.Duration
}

// GateChange is netmon's Gate opening or closing.
type GateChange struct {
	At   time.Time
	Open bool
}

// GateFigures returns the share of the time in [start, end) outside the
// outages (upTime) during which the Gate was open, and the time it was
// open inside them. changes are in order; the Gate is closed before the
// first.
func GateFigures(changes []GateChange, down []Interval, start, end time.Time) (share float64, openDown, upTime time.Duration) {
	var openUp time.Duration
	// Walk the merged boundaries of both step functions.
	var cuts []time.Time
	cuts = append(cuts, start, end)
	for _, c := range changes {
		cuts = append(cuts, c.At)
	}
	for _, iv := range down {
		cuts = append(cuts, iv.Down, iv.Up)
	}
	slices.SortFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if a.Before(start) || !b.After(a) || b.After(end) {
			continue
		}
		open := false
		for _, c := range changes {
			if c.At.After(a) {
				break
			}
			open = c.Open
		}
		d := b.Sub(a)
		if during(a, down) {
			if open {
				openDown += d
			}
			continue
		}
		upTime += d
		if open {
			openUp += d
		}
	}
	if upTime == 0 {
		return 0, openDown, 0
	}
	return float64(openUp) / float64(upTime), openDown, upTime
}

// Floor returns how long a message made at created must wait at least:
// the time to the end of the outage that contains created, 0 outside one.
func Floor(created time.Time, down []Interval) time.Duration {
	for _, iv := range down {
		if !created.Before(iv.Down) && created.Before(iv.Up) {
			return iv.Up.Sub(created)
		}
	}
	return 0
}

// during reports whether t falls inside one of the outages.
func during(t time.Time, down []Interval) bool {
	return Floor(t, down) > 0
}

// Sample is what one run recorded.
type Sample struct {
	// Msgs are the produced messages as the server saw them.
	Msgs []Message
	// Down are the outages as applied.
	Down []Interval
	// Dials are the starts of the sender's connection attempts; nil when
	// they are not counted.
	Dials []time.Time
	// Gates are the changes of netmon's Gate, nil for senders without
	// one; Start and End bound the time they are judged over.
	Gates      []GateChange
	Start, End time.Time
}

// Compute returns the figures of one or more runs of a sender (on
// different seeds), pooled: every message's latency beyond its own run's
// floor, every attempt against its own run's outages.
func Compute(samples ...Sample) Figures {
	f := Figures{Dials: -1, DownDials: -1, UsableShare: -1}
	var beyond, lat []time.Duration
	var upOpen, up float64
	for _, s := range samples {
		f.Messages += len(s.Msgs)
		for _, m := range s.Msgs {
			f.Dups += m.Copies
			if m.Arrived.IsZero() {
				f.Lost++
				continue
			}
			l := m.Arrived.Sub(m.Created)
			lat = append(lat, l)
			beyond = append(beyond, max(0, l-Floor(m.Created, s.Down)))
		}
		if s.Dials != nil {
			f.Dials, f.DownDials = max(f.Dials, 0)+len(s.Dials), max(f.DownDials, 0)
			for _, d := range s.Dials {
				if during(d, s.Down) {
					f.DownDials++
				}
			}
		}
		for _, iv := range s.Down {
			f.DownTime += iv.Up.Sub(iv.Down)
		}
		if s.Gates != nil {
			share, openDown, upTime := GateFigures(s.Gates, s.Down, s.Start, s.End)
			upOpen += share * upTime.Seconds()
			up += upTime.Seconds()
			f.OpenWhileDown += openDown
		}
	}
	f.P50, f.P95, f.Max = quantile(beyond, 0.50), quantile(beyond, 0.95), quantile(beyond, 1)
	f.LatencyP95, f.LatencyMax = quantile(lat, 0.95), quantile(lat, 1)
	if up > 0 {
		f.UsableShare = upOpen / up
	}
	return f
}

// quantile returns the q-quantile of ds by the nearest-rank method (the
// smallest value with at least q of the values at or below it); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Row is one line of the table: a sender on a schedule.
type Row struct {
	Schedule, Sender string
	// Kind is the sender's kind (see Kinds), Sender its name in the table.
	Kind string
	Figures
}

// Table returns rows as a Markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| schedule | sender | beyond the floor p50 | p95 | max | latency p95 | max | connects while down | written twice | lost | Gate open while up | open while down |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		dials := "not measured"
		if r.Dials >= 0 {
			dials = fmt.Sprintf("%d of %d", r.DownDials, r.Dials)
		}
		share, openDown := "", ""
		if r.UsableShare >= 0 {
			share, openDown = fmt.Sprintf("%.1f%%", 100*r.UsableShare), msFmt(r.OpenWhileDown)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %d | %s | %s |\n", r.Schedule, r.Sender,
			msFmt(r.P50), msFmt(r.P95), msFmt(r.Max), msFmt(r.LatencyP95), msFmt(r.LatencyMax),
			dials, r.Dups, r.Messages, r.Lost, share, openDown)
	}
	return b.String()
}

// msFmt writes d in whole milliseconds.
func msFmt(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
