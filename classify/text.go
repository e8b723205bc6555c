package classify

import (
	"strconv"
	"strings"
	"syscall"
)

// Text is what the text of an error from outside Go says, as [ParseText]
// reads it.
type Text struct {
	Class Class
	// Errno is the system error number the text names, 0 if none.
	Errno syscall.Errno
	// NotFound reports a DNS error whose text says the name does not exist
	// (a resolver answered), as [NotFound] does for a *net.DNSError.
	NotFound bool
}

// ParseText classifies the text of an error that reached netmon as text
// only: what a Python, C++ or shell program reports through the local API
// when it has no errno to give. It reads, in this order:
//
//  1. Python's OSError form "[Errno 101] Network is unreachable";
//  2. an errno name such as "ENETUNREACH" (as a word, upper case);
//  3. the C library's text of an errno this package classifies
//     ("connection refused", "no route to host"), in any case;
//  4. resolver texts (a text of letters only, such as "eof" or "tls",
//     matches as a whole word; phrases anywhere): getaddrinfo's "Name or service not known", Go's "no
//     such host" and "NXDOMAIN" say the name does not exist (NotFound);
//     "Temporary failure in name resolution" and other resolver failures
//     are DNS;
//  5. certificate texts ("certificate verify failed", "x509:",
//     "certificate has expired", a certificate alert), then the alerts no
//     resend changes ("protocol version", "handshake failure", "no
//     application protocol", ...: Rejected), then TLS and SSL texts
//     ("SSL:", "tls:", "alert");
//  6. timeouts ("timed out", "timeout", "deadline exceeded");
//  7. a stream that ended ("EOF", "connection closed", "connection
//     lost"): Connection; a cancellation ("canceled", "cancelled"):
//     Canceled.
//
// Anything else is Other, and so is the empty text. It never panics, and
// an errno it reports is always classified as [Classify] classifies that
// errno.
func ParseText(s string) Text {
	if n, ok := pythonErrno(s); ok {
		return Text{Class: errnoClass(n), Errno: n}
	}
	if n, ok := errnoName(s); ok {
		return Text{Class: errnoClass(n), Errno: n}
	}
	lower := strings.ToLower(s)
	for _, n := range textErrnos {
		if strings.Contains(lower, errnoTexts[n]) {
			return Text{Class: errnoClass(n), Errno: n}
		}
	}
	for _, t := range notFoundTexts {
		if strings.Contains(lower, t) {
			return Text{Class: DNS, NotFound: true}
		}
	}
	for _, c := range textClasses {
		for _, t := range c.texts {
			if containsText(lower, t) {
				return Text{Class: c.class}
			}
		}
	}
	return Text{Class: Other}
}

// containsText reports whether lower holds t: a text of letters only
// ("eof", "tls", "alert") as a whole word, so that "whereof", "mdns" and
// "alerting" do not match; a phrase or a text with punctuation ("timed
// out", "x509:") anywhere.
func containsText(lower, t string) bool {
	if strings.IndexFunc(t, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return strings.Contains(lower, t)
	}
	for i := 0; ; {
		j := strings.Index(lower[i:], t)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(t)
		if (start == 0 || !isWordByte(lower[start-1])) && (end == len(lower) || !isWordByte(lower[end])) {
			return true
		}
		i = start + 1
	}
}

// pythonErrno finds "[Errno N]" and returns N if it is a valid errno.
func pythonErrno(s string) (syscall.Errno, bool) {
	i := strings.Index(s, "[Errno ")
	if i < 0 {
		return 0, false
	}
	rest := s[i+len("[Errno "):]
	j := strings.IndexByte(rest, ']')
	if j <= 0 || j > 4 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil || n <= 0 || n > maxErrno {
		return 0, false
	}
	return syscall.Errno(n), true
}

// maxErrno bounds the errnos ParseText accepts: Linux's are below 4096
// (MAX_ERRNO).
const maxErrno = 4095

// errnoName finds the first upper-case word starting with E that names an
// errno this package classifies as a network failure.
func errnoName(s string) (syscall.Errno, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != 'E' || (i > 0 && isWordByte(s[i-1])) {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] >= 'A' && s[j] <= 'Z' {
			j++
		}
		if j < len(s) && isWordByte(s[j]) {
			continue
		}
		if n, ok := errnoNames[s[i:j]]; ok {
			return n, true
		}
	}
	return 0, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// textErrnos are the errnos whose C library text ParseText looks for, the
// most specific texts first ("connection timed out" before any "timed
// out"; Network before Connection, as for joined errors).
var textErrnos = []syscall.Errno{
	syscall.ENETUNREACH, syscall.ENETDOWN, syscall.ENETRESET, syscall.EHOSTUNREACH, syscall.EHOSTDOWN,
	syscall.ENOLINK, syscall.EADDRNOTAVAIL,
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, syscall.ESHUTDOWN,
	syscall.ENOTCONN, syscall.ENOBUFS,
	syscall.ETIMEDOUT,
	syscall.EACCES, syscall.EPERM,
}

// errnoTexts and errnoNames are built from textErrnos and the C library's
// texts as Go's syscall package spells them (lower case).
var (
	errnoTexts = map[syscall.Errno]string{}
	errnoNames = map[string]syscall.Errno{}
)

func init() {
	names := map[syscall.Errno]string{
		syscall.ENETUNREACH: "ENETUNREACH", syscall.ENETDOWN: "ENETDOWN", syscall.ENETRESET: "ENETRESET",
		syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.EHOSTDOWN: "EHOSTDOWN", syscall.ENOLINK: "ENOLINK",
		syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL", syscall.ECONNREFUSED: "ECONNREFUSED",
		syscall.ECONNRESET: "ECONNRESET", syscall.ECONNABORTED: "ECONNABORTED", syscall.EPIPE: "EPIPE",
		syscall.ESHUTDOWN: "ESHUTDOWN", syscall.ENOTCONN: "ENOTCONN", syscall.ENOBUFS: "ENOBUFS",
		syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM",
		syscall.EAGAIN: "EAGAIN", syscall.EPROTO: "EPROTO",
	}
	for n, name := range names {
		errnoNames[name] = n
	}
	for _, n := range textErrnos {
		errnoTexts[n] = strings.ToLower(n.Error())
	}
}

// notFoundTexts say a resolver answered that the name does not exist.
var notFoundTexts = []string{
	"name or service not known",           // glibc getaddrinfo, EAI_NONAME
	"nodename nor servname provided",      // BSD and macOS getaddrinfo
	"no address associated with hostname", // EAI_NODATA
	"no such host",                        // Go's resolver
	"nxdomain",                            // resolver libraries
	"host not found",                      // c-ares, Qt, Boost.Asio
	"non-existent domain",                 // nslookup
	"name does not resolve",               // musl getaddrinfo
}

// textClass is a class and the texts that say it, in the order ParseText
// tries them.
type textClass struct {
	class Class
	texts []string
}

var textClasses = []textClass{
	{DNS, []string{"temporary failure in name resolution", "name resolution", "getaddrinfo", "resolve host", "dns", "gaierror"}},
	{Certificate, []string{"certificate verify failed", "certificate_verify_failed", "x509:", "certificate has expired",
		"certificate is not yet valid", "self-signed certificate", "self signed certificate", "unknown authority",
		"hostname mismatch", "unknown ca", "unknown_ca", "certificate", "sslcertverificationerror"}},
	{Rejected, []string{"protocol version", "protocol_version", "handshake failure", "handshake_failure", "insufficient security",
		"insufficient_security", "no application protocol", "no_application_protocol", "inappropriate fallback",
		"unsupported extension", "missing extension", "unrecognized name", "access denied", "access_denied"}},
	{TLS, []string{"[ssl", "ssl:", "sslerror", "tls:", "tls alert", "wrong version number",
		"alert", "ssl", "tls"}},
	{Timeout, []string{"timed out", "timeout", "timeouterror", "deadline exceeded"}},
	{Connection, []string{"unexpected eof", "eof", "incompletereaderror", "connection closed", "connection lost", "closed by peer",
		"connection aborted", "broken pipe"}},
	{Canceled, []string{"canceled", "cancelled", "cancellederror"}},
}
