// Package wifilab is a real Wi-Fi lab for tests: Debian's own kernel (with
// cfg80211, mac80211 and mac80211_hwsim) booted under QEMU with BusyBox,
// hostapd, wpa_supplicant, iw, iproute2, dnsmasq, dhclient and dhcpcd, and
// the binaries under test.
//
// BuildImage makes the image from Debian packages at test time: the kernel
// package fetched with apt-get download and unpacked with dpkg-deb, its
// modules resolved through their .modinfo dependencies, the user-space
// programs and their libraries taken from the host's installed packages.
// The image is cached under CacheDir, keyed by the package versions.
//
// Boot starts the VM (TCG: a nested KVM boot hangs on our machines) with an
// extra initramfs archive holding labagent and the files of the boot. The
// agent answers Requests on the VM's second serial port: run a command,
// start and stop a background process, read a file, wait for a line in a
// log. Every wait has a deadline, and Close kills the VM.
//
// ForTest does all of it for a test and skips (or, under
// NETMON_REQUIRE_PRIVILEGED=1, fails) without root or QEMU.
package wifilab
