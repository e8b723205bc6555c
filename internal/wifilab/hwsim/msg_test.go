package hwsim

import (
	"bytes"
	"reflect"
	"testing"
)

var (
	ap  = RadioAddr(Addr{2, 0, 0, 0, 0, 0})
	sta = RadioAddr(Addr{2, 0, 0, 0, 2, 0})
	ap2 = RadioAddr(Addr{2, 0, 0, 0, 1, 0})
)

// dataFrame is a 3-address data frame from a2 to a1.
func dataFrame(a1, a2 Addr) []byte {
	b := make([]byte, 24)
	b[0] = 0x08 // data
	copy(b[4:], a1[:])
	copy(b[10:], a2[:])
	copy(b[16:], a1[:])
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	f := Frame{Transmitter: ap, Data: dataFrame(Addr{2, 0, 0, 0, 2, 0}, Addr{2}), Flags: TxCtlReqTxStatus,
		TxInfo: []TxRate{{0, 2}, {-1, 0}, {-1, 0}, {-1, 0}}, TxInfoFlags: make([]byte, 12), Cookie: 1 << 40, Freq: 2412}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("got %+v, want %+v", g, f)
	}
}

func TestTxStatusPadsTxInfo(t *testing.T) {
	s := TxStatus{Transmitter: sta, Flags: TxStatACK, TxInfo: []TxRate{{3, 1}}, Signal: -72, Cookie: 9}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeTxStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	want := s
	want.TxInfo = []TxRate{{3, 1}, {-1, 0}, {-1, 0}, {-1, 0}}
	if !reflect.DeepEqual(want, g) {
		t.Fatalf("got %+v, want %+v", g, want)
	}
}

func TestRxFrameSignalIsSigned(t *testing.T) {
	r := RxFrame{Receiver: sta, Data: []byte("0123456789abcdefghijklmn"), RxRate: 4, Signal: -90, Freq: 2437}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeRxFrame(b)
	if err != nil || !reflect.DeepEqual(r, g) {
		t.Fatalf("got %+v, %v; want %+v", g, err, r)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	good, _ := Frame{Transmitter: ap, Data: dataFrame(sta, ap), Cookie: 1}.Encode()
	for name, b := range map[string][]byte{
		"empty":       nil,
		"truncated":   good[:len(good)-3],
		"no cookie":   must(Frame{Transmitter: ap, Data: []byte{1}}.Encode())[:12+8+4],
		"short addr":  {8, 0, AttrAddrTransmitter, 0, 1, 2, 3, 4},
		"bad txinfo":  {7, 0, AttrTxInfo, 0, 1, 2, 3, 0},
		"long txinfo": append([]byte{14, 0, AttrTxInfo, 0}, bytes.Repeat([]byte{1}, 12)...),
	} {
		if _, err := DecodeFrame(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(must(Frame{Transmitter: ap, Data: dataFrame(sta, ap), Flags: 1, TxInfo: []TxRate{{1, 1}}, Cookie: 3, Freq: 2412}.Encode()))
	f.Add([]byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		// What decodes encodes and decodes to the same frame (TX_INFO
		// padded to four entries).
		b2, err := fr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := DecodeFrame(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if fr.Transmitter != fr2.Transmitter || !bytes.Equal(fr.Data, fr2.Data) || fr.Cookie != fr2.Cookie || fr.Flags != fr2.Flags || fr.Freq != fr2.Freq {
			t.Fatalf("%+v != %+v", fr, fr2)
		}
		// And the medium routes it without trouble.
		m := New(Options{})
		m.AddRadio(sta)
		m.Route(fr)
	})
}

func FuzzDecodeReplies(f *testing.F) {
	f.Add(must(TxStatus{Transmitter: ap, TxInfo: []TxRate{{0, 1}}, Cookie: 1}.Encode()))
	f.Add(must(RxFrame{Receiver: ap, Data: []byte{1, 2}, Signal: -40}.Encode()))
	f.Add([]byte{8, 0, AttrRadioID, 0, 1, 0, 0, 0, 8, 0, AttrRadioName, 0, 'p', 'h', 'y', '0'})
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeTxStatus(b)
		DecodeRxFrame(b)
		DecodeRadio(b)
		DecodeMACAddrEvent(b)
	})
}
