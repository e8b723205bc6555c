package hwsim

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// ListRadios returns the mac80211_hwsim radios of this network namespace
// (HWSIM_CMD_GET_RADIO, dumped).
func ListRadios() ([]Radio, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("hwsim: %w", err)
	}
	defer c.Close()
	fam, err := c.GetFamily(FamilyName)
	if err != nil {
		return nil, fmt.Errorf("hwsim: family %s (is mac80211_hwsim loaded?): %w", FamilyName, err)
	}
	msgs, err := c.Execute(genetlink.Message{Header: genetlink.Header{Command: CmdGetRadio, Version: FamilyVersion}},
		fam.ID, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("hwsim: get radios: %w", err)
	}
	var rs []Radio
	for _, m := range msgs {
		r, err := DecodeRadio(m.Data)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// Run registers as the medium of the radios (HWSIM_CMD_REGISTER) and
// delivers their frames until ctx ends; the kernel goes back to its own
// perfect medium when the socket closes. Run fails at once when another
// medium (wmediumd) is registered (EBUSY) or the radios have more than one
// channel (EOPNOTSUPP). Registered, when not nil, is called once the kernel
// has acknowledged the registration.
func (m *Medium) Run(ctx context.Context, registered func()) error {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("hwsim: %w", err)
	}
	defer c.Close()
	fam, err := c.GetFamily(FamilyName)
	if err != nil {
		return fmt.Errorf("hwsim: family %s (is mac80211_hwsim loaded?): %w", FamilyName, err)
	}
	// The kernel drops a frame when our socket is full: room for many.
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()

	// Register without Execute: frames may reach the socket before the
	// acknowledgement does, so the loop below takes the acknowledgement.
	req, err := c.Send(genetlink.Message{Header: genetlink.Header{Command: CmdRegister, Version: FamilyVersion}},
		fam.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return fmt.Errorf("hwsim: register: %w", err)
	}
	isRegistered := false
	send := func(cmd uint8, b []byte, err error) {
		if err == nil {
			_, err = c.Send(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: FamilyVersion}, Data: b},
				fam.ID, netlink.Request)
		}
		if err != nil {
			m.count(func(s *Stats) { s.SendErrors++ })
		}
	}
	for {
		gms, nms, err := c.Receive()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !isRegistered {
				return fmt.Errorf("hwsim: register: %w", err)
			}
			var oe *netlink.OpError
			switch {
			case errors.As(err, &oe) && errors.Is(oe.Err, syscall.EINVAL):
				// A copy the kernel refused: receiver idle, off
				// channel, or a status for a frame it gave up on.
				m.count(func(s *Stats) { s.Rejected++ })
			case errors.Is(err, syscall.ENOBUFS):
				m.count(func(s *Stats) { s.RecvErrors++ })
			default:
				if errors.As(err, &oe) {
					m.count(func(s *Stats) { s.RecvErrors++ })
					continue
				}
				return fmt.Errorf("hwsim: receive: %w", err)
			}
			continue
		}
		for i, gm := range gms {
			nm := nms[i]
			if nm.Header.Type == netlink.Error {
				if nm.Header.Sequence == req.Header.Sequence && !isRegistered {
					isRegistered = true
					m.logf("registered with %s as the medium", FamilyName)
					if registered != nil {
						registered()
					}
				}
				continue
			}
			if nm.Header.Type != netlink.HeaderType(fam.ID) {
				continue
			}
			switch gm.Header.Command {
			case CmdFrame:
				f, err := DecodeFrame(gm.Data)
				if err != nil {
					m.count(func(s *Stats) { s.BadMessages++ })
					continue
				}
				rxs, st := m.Route(f)
				for _, rx := range rxs {
					b, err := rx.Encode()
					send(CmdFrame, b, err)
				}
				b, err := st.Encode()
				send(CmdTxInfoFrame, b, err)
			case CmdAddMACAddr, CmdDelMACAddr:
				e, err := DecodeMACAddrEvent(gm.Data)
				if err != nil {
					m.count(func(s *Stats) { s.BadMessages++ })
					continue
				}
				m.learn(e, gm.Header.Command == CmdAddMACAddr)
			}
		}
	}
}
