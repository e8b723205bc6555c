package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/internal/dropq"
	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// newLogger returns a logger writing to w: "console" for people, "json"
// for the JSON-lines contract (keys ts, level, msg; the event's own keys
// follow). No caller or stack keys: the lines describe the network, not
// netmon's code.
func newLogger(format string, level zapcore.Level, w io.Writer) (*zap.Logger, error) {
	enc, err := newEncoder(format)
	if err != nil {
		return nil, err
	}
	// zapcore.Lock serialises writes: the metrics server and the event
	// loop may log at the same time.
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

// newEncoder returns the encoder of a log format: "console" or "json".
func newEncoder(format string) (zapcore.Encoder, error) {
	ec := zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		MessageKey:     "msg",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder, // "1.25s": the unit travels with the value
		EncodeName:     zapcore.FullNameEncoder,
	}
	switch format {
	case "json":
		return seconds{zapcore.NewJSONEncoder(ec)}, nil
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("2006-01-02T15:04:05.000Z07:00")
		return escaping{zapcore.NewConsoleEncoder(ec)}, nil
	}
	return nil, fmt.Errorf("log format %q, want console or json", format)
}

// seconds is a JSON encoder that writes every duration twice: as the
// human string ("duration": "724.798441ms") and as a number of seconds
// under the key with "_s" appended ("duration_s": 0.724798441), so that a
// log pipeline can graph outage lengths without parsing Go's duration
// syntax. It reaches the durations inside the event objects too.
type seconds struct{ zapcore.Encoder }

func (e seconds) Clone() zapcore.Encoder { return seconds{e.Encoder.Clone()} }

func (e seconds) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	out := make([]zapcore.Field, 0, len(fields)+2)
	for _, f := range fields {
		switch f.Type {
		case zapcore.DurationType:
			out = append(out, f, zap.Float64(f.Key+"_s", secondsOf(time.Duration(f.Integer))))
			continue
		case zapcore.InlineMarshalerType, zapcore.ObjectMarshalerType:
			if m, ok := f.Interface.(zapcore.ObjectMarshaler); ok {
				f.Interface = secondsObject{m}
			}
		}
		out = append(out, f)
	}
	return e.Encoder.EncodeEntry(ent, out)
}

// secondsOf is d in seconds, rounded once (3.514, where d.Seconds() adds
// the fraction to the whole seconds and gives 3.5140000000000002).
func secondsOf(d time.Duration) float64 { return float64(d) / float64(time.Second) }

// secondsObject marshals an object through secondsEncoder.
type secondsObject struct{ zapcore.ObjectMarshaler }

func (o secondsObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return o.ObjectMarshaler.MarshalLogObject(secondsEncoder{enc})
}

// secondsEncoder adds key_s beside every duration an object writes, and
// reaches the objects inside it.
type secondsEncoder struct{ zapcore.ObjectEncoder }

func (e secondsEncoder) AddDuration(key string, d time.Duration) {
	e.ObjectEncoder.AddDuration(key, d)
	e.ObjectEncoder.AddFloat64(key+"_s", secondsOf(d))
}

func (e secondsEncoder) AddObject(key string, m zapcore.ObjectMarshaler) error {
	return e.ObjectEncoder.AddObject(key, secondsObject{m})
}

func (e secondsEncoder) OpenNamespace(key string) { e.ObjectEncoder.OpenNamespace(key) }

// escaping is a console encoder whose lines cannot be forged or
// disguised. In the message, every rune that is not printable (a newline,
// an escape sequence, a C1 control, a bidirectional override, invalid
// UTF-8) and every backslash is written as Go's %q writes it (\n, \x1b,
// \u202e, \\); in string fields, also those inside the event's objects,
// what JSON leaves raw is escaped too (see escapeField). So a process that
// names itself "ok\nFAKE" or an SSID with control characters stays inside
// its own line, and reads as what it is.
type escaping struct{ zapcore.Encoder }

func (e escaping) Clone() zapcore.Encoder { return escaping{e.Encoder.Clone()} }

func (e escaping) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	ent.Message = escapeText(ent.Message)
	out := make([]zapcore.Field, len(fields))
	for i, f := range fields {
		switch f.Type {
		case zapcore.StringType:
			f.String = escapeField(f.String)
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				f = zap.String(f.Key, escapeField(err.Error()))
			}
		case zapcore.InlineMarshalerType, zapcore.ObjectMarshalerType:
			if m, ok := f.Interface.(zapcore.ObjectMarshaler); ok {
				f.Interface = escapedObject{m}
			}
		}
		out[i] = f
	}
	return e.Encoder.EncodeEntry(ent, out)
}

// escapedObject marshals an object through escapingEncoder.
type escapedObject struct{ zapcore.ObjectMarshaler }

func (o escapedObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return o.ObjectMarshaler.MarshalLogObject(escapingEncoder{enc})
}

// escapingEncoder escapes the strings an object writes, and reaches the
// objects inside it.
type escapingEncoder struct{ zapcore.ObjectEncoder }

func (e escapingEncoder) AddString(key, v string) { e.ObjectEncoder.AddString(key, escapeField(v)) }

// escapeField escapes a field's string for a console line, whose fields
// are JSON: JSON already escapes the controls below 0x20, quotes and
// backslashes, so only a string with a rune it leaves raw (DEL, a C1
// control, a bidirectional override, U+2028) is escaped, whole, as
// escapeText does (and JSON then doubles its backslashes).
func escapeField(s string) string {
	for _, r := range s {
		if r >= 0x7f && r != utf8.RuneError && !unicode.IsPrint(r) {
			return escapeText(s)
		}
	}
	return s
}

func (e escapingEncoder) AddObject(key string, m zapcore.ObjectMarshaler) error {
	return e.ObjectEncoder.AddObject(key, escapedObject{m})
}

// escapeText returns s with every rune that is not printable (and every
// byte that is not UTF-8) escaped as strconv.Quote escapes it, without the
// quotes; s itself when there is none, without allocating.
func escapeText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// eventLine encodes ev with enc as logEvent writes it: one line with its
// newline, in a new slice.
func eventLine(enc zapcore.Encoder, ev netmon.Event) ([]byte, error) {
	ent := zapcore.Entry{Level: eventLevel(ev), Time: ev.At, Message: eventMsg(ev)}
	if ent.Time.IsZero() {
		ent.Time = time.Now()
	}
	buf, err := enc.EncodeEntry(ent, []zapcore.Field{zap.Inline(ev)})
	if err != nil {
		return nil, err
	}
	defer buf.Free()
	return bytes.Clone(buf.Bytes()), nil
}

// eventLevel is the level an event is logged at: losing the path (all of
// it, one IP family of it, or the path to some targets), lost kernel
// messages, lost events and failed sends are warnings; everything else is
// info.
func eventLevel(ev netmon.Event) zapcore.Level {
	switch ev.Kind {
	case netmon.EventState:
		switch ev.Status.Reason {
		case netmon.ReasonIPv4Lost, netmon.ReasonIPv6Lost, netmon.ReasonTargetUnreachable:
			return zapcore.WarnLevel
		}
		if !ev.Status.State.CanSend() {
			return zapcore.WarnLevel
		}
	case netmon.EventGap, netmon.EventSockErr, netmon.EventDropped:
		return zapcore.WarnLevel
	}
	return zapcore.InfoLevel
}

// logEvent writes ev as one line.
func logEvent(log *zap.Logger, ev netmon.Event) {
	if ce := log.Check(eventLevel(ev), eventMsg(ev)); ce != nil {
		if !ev.At.IsZero() {
			ce.Time = ev.At // when it happened, not when it was written
		}
		ce.Write(zap.Inline(ev))
	}
}

// eventMsg is the line's message; the Monitor's messages are short
// ("carrier lost"), the event kind stands in when one is missing.
func eventMsg(ev netmon.Event) string {
	if ev.Msg != "" {
		return ev.Msg
	}
	return string(ev.Kind)
}

// logQueueSize is how many events wait for stdout at most: `netmon watch`
// reads the Monitor's events on one goroutine and writes them on another,
// so that a stalled stdout (a pipe nobody reads, journald under load)
// never holds the reading up. Beyond it, events are dropped, the oldest of
// the lowest rank first (netmon.EventKind.Rank: link, addr, route, ...
// before state and flap lines), and the next line written says how many.
const logQueueSize = 4096

// logWriter writes events to a logger from its own goroutine, through a
// bounded queue.
type logWriter struct {
	log  *zap.Logger
	q    *dropq.Queue[netmon.Event]
	done chan struct{}
}

// startLogWriter starts writing to log; call close to stop.
func startLogWriter(log *zap.Logger) *logWriter {
	w := &logWriter{
		log:  log,
		q:    dropq.New(logQueueSize, func(ev netmon.Event) int { return ev.Kind.Rank() }),
		done: make(chan struct{}),
	}
	go w.run()
	return w
}

// add queues ev for writing; it never waits.
func (w *logWriter) add(ev netmon.Event) { w.q.Push(ev) }

// close writes what is queued, waiting for the output to take it, and
// returns once the writer has stopped. Calling it again does nothing.
func (w *logWriter) close() {
	w.q.Close()
	<-w.done
}

// dropped returns how many events were not written because the output fell
// behind.
func (w *logWriter) dropped() uint64 {
	_, _, n := w.q.Stats()
	return n
}

func (w *logWriter) run() {
	defer close(w.done)
	for {
		ev, missed, ok := w.q.Next(nil)
		if missed > 0 {
			logEvent(w.log, netmon.Event{Kind: netmon.EventDropped, At: time.Now(), Dropped: missed,
				Msg: fmt.Sprintf("%d events not logged: the output fell behind", missed)})
		}
		if !ok {
			return
		}
		logEvent(w.log, ev)
	}
}
