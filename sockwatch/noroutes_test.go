package sockwatch

import (
	"strings"
	"testing"
)

// snmpSample is the start of /proc/net/snmp on the development VM.
const snmpSample = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 21968 0 0 0 0 0 21968 22037 0 4 0 0 0 0 0 0 0 22037
Icmp: InMsgs InErrors InCsumErrors
Icmp: 0 0 0
`

func TestParseSNMP(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     uint64
		wantErr  bool
	}{
		{"real", snmpSample, 4, false},
		{"empty", "", 0, true},
		{"header only", "Ip: Forwarding OutNoRoutes\n", 0, true},
		{"no column", "Ip: Forwarding\nIp: 1\n", 0, true},
		{"mismatched", "Ip: Forwarding OutNoRoutes\nIp: 1\n", 0, true},
		{"not a number", "Ip: OutNoRoutes\nIp: -3\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSNMP(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseSNMP = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseSNMP6(t *testing.T) {
	got, err := parseSNMP6(strings.NewReader("Ip6InNoRoutes                   \t0\nIp6OutNoRoutes                  \t17\n"))
	if err != nil || got != 17 {
		t.Errorf("parseSNMP6 = %d, %v; want 17, nil", got, err)
	}
	if _, err := parseSNMP6(strings.NewReader("Ip6InNoRoutes 0\n")); err == nil {
		t.Error("parseSNMP6 without Ip6OutNoRoutes: want an error")
	}
}

func FuzzParseSNMP(f *testing.F) {
	f.Add(snmpSample)
	f.Add("Ip: OutNoRoutes\nIp: 18446744073709551615\n")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseSNMP(strings.NewReader(in))
		if err != nil && v != 0 {
			t.Fatalf("both a value %d and an error %v", v, err)
		}
		if err == nil && !strings.Contains(in, "OutNoRoutes") {
			t.Fatalf("value %d from input without OutNoRoutes", v)
		}
	})
}

func FuzzParseSNMP6(f *testing.F) {
	f.Add("Ip6OutNoRoutes 3\n")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseSNMP6(strings.NewReader(in))
		if err != nil && v != 0 {
			t.Fatalf("both a value %d and an error %v", v, err)
		}
	})
}
