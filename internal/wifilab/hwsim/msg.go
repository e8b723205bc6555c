// Package hwsim is a wireless medium for mac80211_hwsim radios, driven through
// the driver's generic-netlink family "MAC80211_HWSIM" the way wmediumd does
// it: after HWSIM_CMD_REGISTER the kernel no longer delivers the frames of
// the radios itself but sends each transmitted frame to the registered
// socket (HWSIM_CMD_FRAME), and the medium decides which radios receive it
// (HWSIM_CMD_FRAME back to the kernel, one per receiver, with the signal it
// chose) and reports the transmit status (HWSIM_CMD_TX_INFO_FRAME, with
// HWSIM_TX_STAT_ACK when a unicast frame reached its destination).
//
// The messages follow drivers/net/wireless/mac80211_hwsim.h and the netlink
// handlers of mac80211_hwsim.c in Linux 6.1. A radio is identified in them
// by its second address (data->addresses[1]): the permanent address of the
// wiphy with 0x40 set in the first byte, e.g. 42:00:00:00:01:00 for the
// radio whose interface has 02:00:00:00:01:00. RadioAddr makes it.
package hwsim

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mdlayher/netlink"
)

// FamilyName is the generic-netlink family of mac80211_hwsim.
const FamilyName = "MAC80211_HWSIM"

// FamilyVersion is the version the kernel registers the family with (1 in
// Linux 6.1; the kernel does not check the version of requests).
const FamilyVersion = 1

// Commands of the family (enum hwsim_commands).
const (
	CmdRegister    = 1
	CmdFrame       = 2
	CmdTxInfoFrame = 3
	CmdNewRadio    = 4
	CmdDelRadio    = 5
	CmdGetRadio    = 6
	CmdAddMACAddr  = 7
	CmdDelMACAddr  = 8
)

// Attributes of the family (enum hwsim_attrs). Integers are in host byte
// order, as everywhere in netlink.
const (
	AttrAddrReceiver    = 1  // 6 bytes
	AttrAddrTransmitter = 2  // 6 bytes
	AttrFrame           = 3  // the 802.11 frame, at most 2304 bytes (IEEE80211_MAX_DATA_LEN)
	AttrFlags           = 4  // u32, HWSIM_TX_* flags
	AttrRxRate          = 5  // u32, rate index into the band's bitrates
	AttrSignal          = 6  // u32 carrying a signed dBm value
	AttrTxInfo          = 7  // IEEE80211_TX_MAX_RATES (4) struct hwsim_tx_rate {s8 idx; u8 count}
	AttrCookie          = 8  // u64
	AttrChannels        = 9  // u32
	AttrRadioID         = 10 // u32
	AttrRegHintAlpha2   = 11
	AttrRegCustomReg    = 12
	AttrRegStrictReg    = 13
	AttrSupportP2P      = 14
	AttrUseChanctx      = 15
	AttrDestroyOnClose  = 16
	AttrRadioName       = 17 // string, the wiphy name (phyN), not NUL-terminated
	AttrNoVIF           = 18
	AttrFreq            = 19 // u32 MHz
	AttrPad             = 20
	AttrTxInfoFlags     = 21 // 4 packed struct hwsim_tx_rate_flag {s8 idx; u16 flags}
	AttrPermAddr        = 22 // 6 bytes
)

// Transmit control and status flags (enum hwsim_tx_control_flags).
const (
	TxCtlReqTxStatus = 1 << 0 // the transmitter wants a status report
	TxCtlNoACK       = 1 << 1 // the frame expects no acknowledgement (group addressed)
	TxStatACK        = 1 << 2 // status: the frame was acknowledged
)

// MaxTxRates is IEEE80211_TX_MAX_RATES: the entries of HWSIM_ATTR_TX_INFO.
const MaxTxRates = 4

// MaxFrameLen is IEEE80211_MAX_DATA_LEN, the longest frame the kernel
// accepts back.
const MaxFrameLen = 2304

// Addr is a MAC address.
type Addr [6]byte

func (a Addr) String() string { return net.HardwareAddr(a[:]).String() }

// IsGroup reports whether a is a multicast or broadcast address.
func (a Addr) IsGroup() bool { return a[0]&1 != 0 }

// ParseAddr parses a MAC address in the form 02:00:00:00:01:00.
func ParseAddr(s string) (Addr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return Addr{}, fmt.Errorf("hwsim: bad MAC address %q", s)
	}
	return Addr(hw), nil
}

// RadioAddr is the address that names the radio with permanent address perm
// in the family's messages (the driver's data->addresses[1]).
func RadioAddr(perm Addr) Addr {
	perm[0] |= 0x40
	return perm
}

// TxRate is one struct hwsim_tx_rate: a rate index (-1 ends the list) and
// the number of attempts at it.
type TxRate struct {
	Idx   int8
	Count uint8
}

// Frame is a HWSIM_CMD_FRAME from the kernel: a radio transmitted Data.
type Frame struct {
	Transmitter Addr     // the radio (HWSIM_ATTR_ADDR_TRANSMITTER)
	Data        []byte   // the 802.11 frame
	Flags       uint32   // TxCtl* flags
	TxInfo      []TxRate // the rates mac80211 would try, in order
	TxInfoFlags []byte   // HWSIM_ATTR_TX_INFO_FLAGS as sent, if any
	Cookie      uint64   // identifies the frame in the status report
	Freq        uint32   // MHz, 0 when absent
}

// RxFrame is a HWSIM_CMD_FRAME to the kernel: Receiver hears Data.
type RxFrame struct {
	Receiver Addr
	Data     []byte
	RxRate   uint32
	Signal   int32 // dBm
	Freq     uint32
}

// TxStatus is a HWSIM_CMD_TX_INFO_FRAME to the kernel: what became of the
// frame with Cookie sent by Transmitter.
type TxStatus struct {
	Transmitter Addr
	Flags       uint32 // the frame's flags, with TxStatACK when acknowledged
	TxInfo      []TxRate
	Signal      int32 // the acknowledgement's signal, dBm
	Cookie      uint64
}

// MACAddrEvent is a HWSIM_CMD_ADD_MAC_ADDR or HWSIM_CMD_DEL_MAC_ADDR from
// the kernel: an interface with address Addr was added to (or removed from)
// the radio Radio.
type MACAddrEvent struct {
	Radio, Addr Addr
}

// Radio is one reply to HWSIM_CMD_GET_RADIO.
type Radio struct {
	ID   uint32
	Name string
}

var errShort = errors.New("hwsim: attribute too short")

func decodeAddr(ad *netlink.AttributeDecoder, dst *Addr) {
	ad.Do(func(b []byte) error {
		if len(b) != len(dst) {
			return fmt.Errorf("hwsim: address of %d bytes", len(b))
		}
		copy(dst[:], b)
		return nil
	})
}

func decodeTxInfo(b []byte) ([]TxRate, error) {
	if len(b)%2 != 0 || len(b)/2 > MaxTxRates {
		return nil, fmt.Errorf("hwsim: tx info of %d bytes", len(b))
	}
	r := make([]TxRate, len(b)/2)
	for i := range r {
		r[i] = TxRate{Idx: int8(b[2*i]), Count: b[2*i+1]}
	}
	return r, nil
}

func encodeTxInfo(r []TxRate) []byte {
	// The kernel reads all IEEE80211_TX_MAX_RATES entries: pad with -1.
	b := make([]byte, 2*MaxTxRates)
	for i := range MaxTxRates {
		if i < len(r) {
			b[2*i], b[2*i+1] = byte(r[i].Idx), r[i].Count
		} else {
			b[2*i] = 0xff
		}
	}
	return b
}

// DecodeFrame decodes the attributes of a HWSIM_CMD_FRAME sent by the kernel.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return f, err
	}
	var have uint
	for ad.Next() {
		switch ad.Type() {
		case AttrAddrTransmitter:
			decodeAddr(ad, &f.Transmitter)
		case AttrFrame:
			f.Data = ad.Bytes()
		case AttrFlags:
			f.Flags = ad.Uint32()
		case AttrTxInfo:
			ad.Do(func(b []byte) (err error) { f.TxInfo, err = decodeTxInfo(b); return })
		case AttrTxInfoFlags:
			f.TxInfoFlags = ad.Bytes()
		case AttrCookie:
			f.Cookie = ad.Uint64()
		case AttrFreq:
			f.Freq = ad.Uint32()
		default:
			continue
		}
		have |= 1 << ad.Type()
	}
	if err := ad.Err(); err != nil {
		return f, err
	}
	for _, a := range []uint16{AttrAddrTransmitter, AttrFrame, AttrCookie} {
		if have&(1<<a) == 0 {
			return f, fmt.Errorf("hwsim: frame without attribute %d", a)
		}
	}
	if len(f.Data) > MaxFrameLen {
		return f, fmt.Errorf("hwsim: frame of %d bytes", len(f.Data))
	}
	return f, nil
}

// Encode encodes f as the kernel does (for tests and replays).
func (f Frame) Encode() ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(AttrAddrTransmitter, f.Transmitter[:])
	ae.Bytes(AttrFrame, f.Data)
	ae.Uint32(AttrFlags, f.Flags)
	if f.Freq != 0 {
		ae.Uint32(AttrFreq, f.Freq)
	}
	if f.TxInfo != nil {
		ae.Bytes(AttrTxInfo, encodeTxInfo(f.TxInfo))
	}
	if f.TxInfoFlags != nil {
		ae.Bytes(AttrTxInfoFlags, f.TxInfoFlags)
	}
	ae.Uint64(AttrCookie, f.Cookie)
	return ae.Encode()
}

// Encode encodes r for the kernel. The kernel wants ADDR_RECEIVER, FRAME,
// RX_RATE and SIGNAL, and drops a frame shorter than a 3-address header.
func (r RxFrame) Encode() ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(AttrAddrReceiver, r.Receiver[:])
	ae.Bytes(AttrFrame, r.Data)
	ae.Uint32(AttrRxRate, r.RxRate)
	ae.Uint32(AttrSignal, uint32(r.Signal))
	if r.Freq != 0 {
		ae.Uint32(AttrFreq, r.Freq)
	}
	return ae.Encode()
}

// DecodeRxFrame decodes what RxFrame.Encode encodes.
func DecodeRxFrame(b []byte) (RxFrame, error) {
	var r RxFrame
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case AttrAddrReceiver:
			decodeAddr(ad, &r.Receiver)
		case AttrFrame:
			r.Data = ad.Bytes()
		case AttrRxRate:
			r.RxRate = ad.Uint32()
		case AttrSignal:
			r.Signal = int32(ad.Uint32())
		case AttrFreq:
			r.Freq = ad.Uint32()
		}
	}
	return r, ad.Err()
}

// Encode encodes s for the kernel, which wants ADDR_TRANSMITTER, FLAGS,
// COOKIE, SIGNAL and TX_INFO (all four entries).
func (s TxStatus) Encode() ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(AttrAddrTransmitter, s.Transmitter[:])
	ae.Uint32(AttrFlags, s.Flags)
	ae.Uint32(AttrSignal, uint32(s.Signal))
	ae.Bytes(AttrTxInfo, encodeTxInfo(s.TxInfo))
	ae.Uint64(AttrCookie, s.Cookie)
	return ae.Encode()
}

// DecodeTxStatus decodes what TxStatus.Encode encodes.
func DecodeTxStatus(b []byte) (TxStatus, error) {
	var s TxStatus
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return s, err
	}
	for ad.Next() {
		switch ad.Type() {
		case AttrAddrTransmitter:
			decodeAddr(ad, &s.Transmitter)
		case AttrFlags:
			s.Flags = ad.Uint32()
		case AttrSignal:
			s.Signal = int32(ad.Uint32())
		case AttrTxInfo:
			ad.Do(func(b []byte) (err error) { s.TxInfo, err = decodeTxInfo(b); return })
		case AttrCookie:
			s.Cookie = ad.Uint64()
		}
	}
	return s, ad.Err()
}

// DecodeMACAddrEvent decodes a HWSIM_CMD_ADD_MAC_ADDR or DEL_MAC_ADDR: the
// radio in ADDR_TRANSMITTER, the interface's address in ADDR_RECEIVER.
func DecodeMACAddrEvent(b []byte) (MACAddrEvent, error) {
	var e MACAddrEvent
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, err
	}
	var n int
	for ad.Next() {
		switch ad.Type() {
		case AttrAddrTransmitter:
			decodeAddr(ad, &e.Radio)
			n++
		case AttrAddrReceiver:
			decodeAddr(ad, &e.Addr)
			n++
		}
	}
	if err := ad.Err(); err != nil {
		return e, err
	}
	if n != 2 {
		return e, errShort
	}
	return e, nil
}

// DecodeRadio decodes a reply to HWSIM_CMD_GET_RADIO.
func DecodeRadio(b []byte) (Radio, error) {
	var r Radio
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	found := false
	for ad.Next() {
		switch ad.Type() {
		case AttrRadioID:
			r.ID = ad.Uint32()
			found = true
		case AttrRadioName:
			r.Name = strings.TrimRight(string(ad.Bytes()), "\x00")
		}
	}
	if err := ad.Err(); err != nil {
		return r, err
	}
	if !found {
		return r, errors.New("hwsim: radio without HWSIM_ATTR_RADIO_ID")
	}
	return r, nil
}
