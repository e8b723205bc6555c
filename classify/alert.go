package classify

import (
	"crypto/x509"
	"errors"
	"reflect"
)

// TLS alert codes (RFC 8446 section 6, RFC 5246 section 7.2, RFC 8446's
// certificate_required, RFC 7301's no_application_protocol) that decide a
// class other than TLS.
const (
	alertHandshakeFailure        = 40
	alertBadCertificate          = 42
	alertUnsupportedCertificate  = 43
	alertCertificateRevoked      = 44
	alertCertificateExpired      = 45
	alertCertificateUnknown      = 46
	alertUnknownCA               = 48
	alertAccessDenied            = 49
	alertProtocolVersion         = 70
	alertInsufficientSecurity    = 71
	alertInappropriateFallback   = 86
	alertMissingExtension        = 109
	alertUnsupportedExtension    = 110
	alertBadCertificateStatus    = 113
	alertCertificateRequired     = 116
	alertNoApplicationProtocol   = 120
	alertUnrecognizedName        = 112
	alertBadCertificateHashValue = 114
)

// alertCodeClass is the class of a TLS alert: the certificate alerts are
// [Certificate] (either side refused a certificate: the client's own,
// revoked or missing, or the server's); those that say the two ends
// cannot agree whatever is resent (protocol version, security level,
// cipher suites, extensions, ALPN, access denied, a name the server does
// not serve) are [Rejected]; the rest (close_notify, unexpected_message,
// bad_record_mac, decode_error, internal_error, ...) are [TLS]: a record
// a flaky link or a middlebox mangled, which a new connection may not
// meet.
func alertCodeClass(code uint8) Class {
	switch code {
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked, alertCertificateExpired,
		alertCertificateUnknown, alertUnknownCA, alertBadCertificateStatus, alertCertificateRequired,
		alertBadCertificateHashValue:
		return Certificate
	case alertHandshakeFailure, alertAccessDenied, alertProtocolVersion, alertInsufficientSecurity,
		alertInappropriateFallback, alertMissingExtension, alertUnsupportedExtension, alertNoApplicationProtocol,
		alertUnrecognizedName:
		return Rejected
	}
	return TLS
}

// alertClass classifies the error inside the *net.OpError with which
// crypto/tls reports an alert on TCP ("remote error" for one received,
// "local error" for one sent). The alert's type is unexported, a uint8
// whose value is the alert code; reading it through reflect allocates
// nothing. Anything else there is TLS.
func alertClass(err error) Class {
	if err == nil {
		return TLS
	}
	v := reflect.ValueOf(err)
	if t := v.Type(); t.Kind() == reflect.Uint8 && t.PkgPath() == "crypto/tls" {
		return alertCodeClass(uint8(v.Uint()))
	}
	return TLS
}

// CertificateTime reports whether err's chain holds a certificate that
// this side rejected for its validity period: expired, or not yet valid
// (x509.CertificateInvalidError with reason x509.Expired). A robot whose
// clock is not yet set after boot (no RTC, before NTP) sees every
// certificate so, and the same send will succeed once the clock is set:
// the caller may retry these while the clock is unsynchronised.
func CertificateTime(err error) bool {
	var ce x509.CertificateInvalidError
	return errors.As(err, &ce) && ce.Reason == x509.Expired
}
