// Package scenarios holds the Wi-Fi lab's scenarios: netmon against a real
// cfg80211/mac80211 stack (Debian's 6.1 kernel with mac80211_hwsim under
// QEMU, hostapd, wpa_supplicant, dnsmasq, dhclient and dhcpcd; see package
// wifilab). It has only tests: `go test ./internal/wifilab/scenarios`
// boots one VM and runs every scenario in it, in order.
package scenarios
