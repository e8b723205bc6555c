package delivery

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Action is what one step of a schedule does to the robot's network.
type Action int

const (
	// Drop takes the gateway's end of the robot's veth down for the
	// step's Len, then up again: the robot sees its carrier go and return.
	Drop Action = iota
	// AddrChange replaces the robot's address with another of the same
	// subnet, as a DHCP server handing out a new lease would; the default
	// route goes with the old address and is added again.
	AddrChange
	// GatewaySwitch moves the default route to the other gateway: the old
	// gateway (its address and its link-layer address) goes away, the new
	// one (another address, another link-layer address) comes, and Len
	// later the robot's default route is replaced by one via the new
	// gateway, whose neighbour entry the robot must then resolve.
	GatewaySwitch
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case AddrChange:
		return "addr"
	case GatewaySwitch:
		return "gw"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Step is one disturbance of a schedule.
type Step struct {
	// At is when the step begins, from the start of the run.
	At time.Duration
	// Action is what it does.
	Action Action
	// Len is how long the path is gone: a Drop's down time, a
	// GatewaySwitch's gap between the old gateway going and the route
	// moving. Zero for AddrChange, whose gap is as long as the changes take.
	Len time.Duration
}

// Schedule is a seeded sequence of disturbances.
type Schedule struct {
	// Name is the schedule's name: edge, out, addr or gw.
	Name string
	// Seed is the seed it was drawn from.
	Seed uint64
	// Steps are in order of At.
	Steps []Step
	// Length is how long the producer makes messages, from the start: a
	// little past the last step's end.
	Length time.Duration
	// Drain is how long a run waits, after the producer stops, for the
	// last messages to be acknowledged; what is still missing then is lost.
	Drain time.Duration
}

// Schedules are the names NewSchedule knows, in the order of the table.
var Schedules = []string{"edge", "out", "addr", "gw"}

// shape is the recipe of one schedule: n steps of action, each after a
// gap (from the previous step's end) drawn uniformly from gap, lasting a
// time drawn uniformly from length.
type shape struct {
	action      Action
	n           int
	gap, length [2]time.Duration
}

// secs is the range lo-hi seconds.
func secs(lo, hi float64) [2]time.Duration {
	return [2]time.Duration{time.Duration(lo * float64(time.Second)), time.Duration(hi * float64(time.Second))}
}

// shapes are the full schedules; shortShapes the variants for tests.
var (
	shapes = map[string]shape{
		"edge": {Drop, 12, secs(2, 8), secs(0.3, 1.5)},
		"out":  {Drop, 6, secs(2, 8), secs(4, 12)},
		"addr": {AddrChange, 4, secs(3, 6), secs(0, 0)},
		"gw":   {GatewaySwitch, 4, secs(3, 6), secs(0.2, 0.5)},
	}
	shortShapes = map[string]shape{
		"edge": {Drop, 3, secs(1, 2), secs(0.3, 1)},
		"out":  {Drop, 2, secs(1, 2), secs(2, 3)},
		"addr": {AddrChange, 2, secs(1, 2), secs(0, 0)},
		"gw":   {GatewaySwitch, 2, secs(1, 2), secs(0.2, 0.5)},
	}
)

// tail is how long the producer goes on after the last step's end.
const tail = 2 * time.Second

// NewSchedule returns the named schedule (one of [Schedules]) drawn from
// seed: the same name, seed and short give the same steps. short gives a
// variant of a few steps for tests.
//
//   - edge, the edge of coverage: 12 drops of 0.3-1.5 s, 2-8 s apart.
//   - out, out of coverage: 6 drops of 4-12 s, 2-8 s apart.
//   - addr: 4 changes of the robot's address, 3-6 s apart.
//   - gw: 4 switches of the default gateway, 3-6 s apart, each with a
//     gap of 0.2-0.5 s without a usable gateway.
func NewSchedule(name string, seed uint64, short bool) (Schedule, error) {
	sh, ok := shapes[name]
	if short {
		sh, ok = shortShapes[name]
	}
	if !ok {
		return Schedule{}, fmt.Errorf("delivery: no schedule %q (want one of %v)", name, Schedules)
	}
	r := rand.New(rand.NewPCG(seed, uint64(sh.action)))
	uniform := func(b [2]time.Duration) time.Duration {
		if b[1] <= b[0] {
			return b[0]
		}
		return b[0] + time.Duration(r.Int64N(int64(b[1]-b[0])))
	}
	sc := Schedule{Name: name, Seed: seed}
	var end time.Duration
	for range sh.n {
		st := Step{At: end + uniform(sh.gap), Action: sh.action, Len: uniform(sh.length)}
		sc.Steps = append(sc.Steps, st)
		end = st.At + st.Len
	}
	sc.Length, sc.Drain = end+tail, 60*time.Second
	if short {
		sc.Drain = 20 * time.Second
	}
	return sc, nil
}
