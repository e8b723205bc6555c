package wifilab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// imageFormat changes whenever what BuildImage puts in an image changes, so
// that a cached image of an older layout is not used.
const imageFormat = "wifilab-image-6"

// KernelPackage is the Debian package whose kernel the lab boots: Debian
// 12's own kernel has mac80211_hwsim, cfg80211 and mac80211 as modules.
const KernelPackage = "linux-image-amd64"

// Modules are the kernel modules the image holds, with what they depend on.
// The guest loads mac80211_hwsim itself (with the radios it wants); the
// others load at boot.
var Modules = append([]string{"mac80211_hwsim"}, bootModules...)

// bootModules load at boot: veth, bridge (two APs of one network), and the ciphers mac80211 asks the crypto
// API for when it installs WPA2/WPA3 keys (the guest has no modules.alias
// for the kernel's request_module to find them by).
var bootModules = []string{"veth", "bridge", "ccm", "gcm", "cmac", "ctr", "ghash_generic", "seqiv", "aesni_intel"}

// Tool is a program from a Debian package that the image holds.
type Tool struct {
	Name    string // the program, found on PATH, /usr/sbin or /sbin
	Package string // the Debian package that ships it
}

// Tools are the user-space programs of the image: the Wi-Fi stack, the DHCP
// server and clients, and iproute2. BusyBox provides the rest.
var Tools = []Tool{
	{"hostapd", "hostapd"},
	{"hostapd_cli", "hostapd"},
	{"wpa_supplicant", "wpasupplicant"},
	{"wpa_cli", "wpasupplicant"},
	{"iw", "iw"},
	{"ip", "iproute2"},
	{"dnsmasq", "dnsmasq-base"},
	{"dhclient", "isc-dhcp-client"},
	{"dhcpcd", "dhcpcd-base"},
	{"dash", "dash"},
}

// Image is a bootable lab: a kernel and an initramfs with BusyBox, the
// Tools, their libraries and the Modules.
type Image struct {
	Dir     string // the cache directory that holds it
	Kernel  string // vmlinuz
	Initrd  string // the base initramfs, a cpio archive
	Release string // the kernel's release, as uname -r prints it
	// Key names the Debian package versions the image was built from.
	Key string
	// Cached says that the image was already built by an earlier run.
	Cached bool
}

// CacheDir is where images are kept: $NETMON_WIFILAB_CACHE, or
// netmon-wifilab in the user's cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("NETMON_WIFILAB_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("wifilab: no cache directory (set NETMON_WIFILAB_CACHE): %w", err)
	}
	return filepath.Join(d, "netmon-wifilab"), nil
}

// BuildImage returns the image for the Debian packages installed now,
// building it into cacheDir unless an image of the same package versions is
// there. It needs apt-get (to download the kernel package), dpkg-deb, ldd
// and the Tools installed on the host.
func BuildImage(ctx context.Context, cacheDir string) (*Image, error) {
	kpkg, err := kernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	pkgs := []string{"busybox-static"}
	for _, t := range Tools {
		pkgs = append(pkgs, t.Package)
	}
	versions, err := packageVersions(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	kver, err := candidateVersion(ctx, kpkg)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s %s\n%s\n%s\n%s\n", imageFormat, kpkg, kver, strings.Join(Modules, ","), versions, initScript)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(cacheDir, key)
	img := &Image{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.cpio"), Key: key}
	if rel, err := os.ReadFile(filepath.Join(dir, "release")); err == nil {
		img.Release, img.Cached = string(rel), true
		return img, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	// Test processes of several packages build at once on a cold cache:
	// one builds, the others wait for it and take its image.
	lock, err := os.OpenFile(filepath.Join(cacheDir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return nil, err
	}
	if rel, err := os.ReadFile(filepath.Join(dir, "release")); err == nil {
		img.Release, img.Cached = string(rel), true
		return img, nil
	}
	tmp, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	defer os.RemoveAll(tmp)
	rel, err := build(ctx, tmp, kpkg)
	if err != nil {
		return nil, err
	}
	os.RemoveAll(filepath.Join(tmp, "kernel"))
	if err := os.WriteFile(filepath.Join(tmp, "release"), []byte(rel), 0o644); err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test process built the same image at the same time.
		if _, statErr := os.Stat(filepath.Join(dir, "release")); statErr != nil {
			return nil, fmt.Errorf("wifilab: %w", err)
		}
	}
	img.Release = rel
	return img, nil
}

// flock takes an exclusive lock on f, waiting (with ctx's deadline) while
// another process holds it. The kernel drops it when f is closed or the
// process dies.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("wifilab: locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wifilab: waiting for another process building the image (%s): %w", f.Name(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var versionRE = regexp.MustCompile(`(?m)^Version:\s*(\S+)`)

// candidateVersion is the version of pkg that apt-get download fetches.
func candidateVersion(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).CombinedOutput()
	m := versionRE.FindSubmatch(out)
	if err != nil || m == nil {
		return "", fmt.Errorf("wifilab: apt-cache show %s: %v: %s (run apt-get update)", pkg, err, LastLines(string(out), 3))
	}
	return string(m[1]), nil
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-\S+)`)

// kernelPackage names the versioned kernel package linux-image-amd64 stands
// for, such as linux-image-6.1.0-57-amd64.
func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", KernelPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wifilab: apt-cache depends %s: %v: %s (run apt-get update)", KernelPackage, err, bytes.TrimSpace(out))
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("wifilab: %s depends on no linux-image package: %s (run apt-get update)", KernelPackage, bytes.TrimSpace(out))
	}
	return string(m[1]), nil
}

// packageVersions lists "package version" lines for pkgs, or says which of
// them are not installed.
func packageVersions(ctx context.Context, pkgs []string) (string, error) {
	uniq := map[string]bool{}
	for _, p := range pkgs {
		uniq[p] = true
	}
	pkgs = pkgs[:0]
	for p := range uniq {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	args := append([]string{"-W", "-f", "${Package} ${Status} ${Version}\n"}, pkgs...)
	out, _ := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	installed := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[3] == "installed" {
			installed[f[0]] = f[4]
		}
	}
	var missing []string
	var b strings.Builder
	for _, p := range pkgs {
		v, ok := installed[p]
		if !ok {
			missing = append(missing, p)
		}
		fmt.Fprintf(&b, "%s %s\n", p, v)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("wifilab: Debian packages not installed: %s (apt-get install %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return b.String(), nil
}

// build downloads and unpacks kpkg into dir/kernel, and writes dir/vmlinuz
// and dir/initrd.cpio. It returns the kernel's release.
func build(ctx context.Context, dir, kpkg string) (string, error) {
	dl := exec.CommandContext(ctx, "apt-get", "download", kpkg)
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("wifilab: apt-get download %s: %v: %s (run apt-get update)", kpkg, err, LastLines(string(out), 5))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, kpkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("wifilab: apt-get download %s left %d .deb files in %s, want 1", kpkg, len(debs), dir)
	}
	kdir := filepath.Join(dir, "kernel")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], kdir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("wifilab: dpkg-deb -x %s: %v: %s", debs[0], err, LastLines(string(out), 5))
	}
	os.Remove(debs[0])
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return "", fmt.Errorf("wifilab: %s holds %d boot/vmlinuz-* files, want 1", kpkg, len(vmlinuz))
	}
	rel := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	if err := os.Rename(vmlinuz[0], filepath.Join(dir, "vmlinuz")); err != nil {
		return "", fmt.Errorf("wifilab: %w", err)
	}
	a := newArchive()
	if err := addModules(a, filepath.Join(kdir, "lib", "modules", rel), rel); err != nil {
		return "", err
	}
	if err := addUserland(ctx, a); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(dir, "initrd.cpio"))
	if err != nil {
		return "", fmt.Errorf("wifilab: %w", err)
	}
	if err := a.writeTo(f); err != nil {
		f.Close()
		return "", fmt.Errorf("wifilab: writing the initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("wifilab: %w", err)
	}
	return rel, nil
}

// addModules adds the Modules and every module they depend on (from each
// module's .modinfo "depends=" field), with a modules.dep for BusyBox's
// modprobe. The package ships no modules.dep: depmod writes it on install.
func addModules(a *archive, moddir, rel string) error {
	paths := map[string]string{} // module name -> path under moddir
	err := filepath.WalkDir(moddir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			name := strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")
			rp, _ := filepath.Rel(moddir, p)
			paths[name] = rp
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wifilab: reading the kernel's modules: %w", err)
	}
	deps := map[string][]string{}
	var visit func(name string) error
	visit = func(name string) error {
		if _, done := deps[name]; done {
			return nil
		}
		rp, ok := paths[name]
		if !ok {
			return fmt.Errorf("wifilab: the kernel package has no module %s (under %s)", name, moddir)
		}
		d, err := moduleDepends(filepath.Join(moddir, rp))
		if err != nil {
			return err
		}
		deps[name] = d
		for _, dep := range d {
			if err := visit(dep); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range Modules {
		if err := visit(m); err != nil {
			return err
		}
	}
	// modules.dep lists, for each module, every module it needs, in the
	// order to load them last-first (as depmod writes it).
	var dep strings.Builder
	names := make([]string, 0, len(deps))
	for n := range deps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var order []string
		seen := map[string]bool{}
		var walk func(string)
		walk = func(m string) {
			for _, d := range deps[m] {
				if !seen[d] {
					seen[d] = true
					walk(d)
					order = append([]string{paths[d]}, order...)
				}
			}
		}
		walk(n)
		fmt.Fprintf(&dep, "%s:", paths[n])
		for _, o := range order {
			fmt.Fprintf(&dep, " %s", o)
		}
		dep.WriteString("\n")
		if err := a.file(filepath.Join("lib/modules", rel, paths[n]), filepath.Join(moddir, paths[n])); err != nil {
			return fmt.Errorf("wifilab: %w", err)
		}
	}
	a.bytes(filepath.Join("lib/modules", rel, "modules.dep"), 0o644, []byte(dep.String()))
	return nil
}

// moduleDepends reads the "depends=" field of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wifilab: module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("wifilab: module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("wifilab: module %s: %w", path, err)
	}
	for _, field := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// initScript is the image's /init: it mounts what the tests use, installs
// BusyBox's applets and hands the second serial port to the agent.
var initScript = `#!/bin/busybox sh
/bin/busybox --install -s
# /bin/sh is dash: BusyBox's sh runs its own applets before anything on
# PATH, so dhclient-script and dhcpcd's hooks would get BusyBox's ip.
for d in /usr/bin/dash /bin/dash /usr/sbin/dash; do [ -x $d ] && ln -sf $d /bin/sh && break; done
# The Tools before BusyBox's applets of the same name (ip).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /sys /dev /tmp /run /var/run /var/lib/dhcp /var/lib/dhcpcd /var/lib/misc /var/db /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
for m in ` + strings.Join(bootModules, " ") + `; do modprobe $m || echo "wifilab: modprobe $m failed"; done
hostname wifilab
echo "wifilab: userspace up, kernel $(uname -r)"
exec /bin/labagent /dev/ttyS1
`

// profilePath is the shell profile Lab.Sh sources before its script.
const profilePath = "etc/wifilab/profile"

// addUserland adds BusyBox, the Tools with their libraries and scripts, and
// the few files under /etc that they read.
func addUserland(ctx context.Context, a *archive) error {
	if err := a.file("bin/busybox", "/bin/busybox"); err != nil {
		return fmt.Errorf("wifilab: busybox (apt-get install busybox-static): %w", err)
	}
	if dynamic("/bin/busybox") {
		return errors.New("wifilab: /bin/busybox is dynamically linked (apt-get install busybox-static)")
	}
	a.bytes("init", 0o755, []byte(initScript))
	libs := map[string]bool{}
	// BusyBox's sh runs its own applets before anything on PATH (ip among
	// them); the profile Sh sources makes each Tool a function that runs
	// the real program.
	var profile strings.Builder
	for _, t := range Tools {
		p, err := lookTool(t.Name)
		if err != nil {
			return fmt.Errorf("wifilab: %s not installed (apt-get install %s)", t.Name, t.Package)
		}
		fmt.Fprintf(&profile, "%s() { %s \"$@\"; }\n", t.Name, p)
		if err := a.file(p, p); err != nil {
			return fmt.Errorf("wifilab: %w", err)
		}
		ls, err := sharedLibs(ctx, p)
		if err != nil {
			return err
		}
		for _, l := range ls {
			libs[l] = true
		}
	}
	a.bytes(profilePath, 0o644, []byte(profile.String()))
	for l := range libs {
		if err := a.file(l, l); err != nil {
			return fmt.Errorf("wifilab: library %w", err)
		}
	}
	// dhclient runs dhclient-script, dhcpcd its hooks; both are shell
	// scripts that BusyBox's sh runs.
	if err := a.file("sbin/dhclient-script", "/sbin/dhclient-script"); err != nil {
		return fmt.Errorf("wifilab: %w (apt-get install isc-dhcp-client)", err)
	}
	for _, d := range []string{"/usr/lib/dhcpcd", "/lib/dhcpcd"} {
		if err := addTree(a, d); err != nil {
			return err
		}
	}
	a.bytes("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ndnsmasq:x:100:65534::/nonexistent:/bin/false\n"))
	a.bytes("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	a.bytes("etc/hosts", 0o644, []byte("127.0.0.1 localhost wifilab\n"))
	a.bytes("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files\n"))
	return nil
}

// dynamic says whether the ELF file at path asks for a dynamic loader.
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.EvalSymlinks(p)
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

var lddRE = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibs lists the libraries ldd says bin loads, the dynamic loader
// among them.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("wifilab: ldd %s: %v", bin, err)
	}
	var libs []string
	for _, m := range lddRE.FindAllSubmatch(out, -1) {
		libs = append(libs, string(m[1]))
	}
	return libs, nil
}

func addTree(a *archive, root string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			return a.file(p, p)
		}
		return nil
	})
}
