package login

// Reason says why a login failed: the `reason` label values of the login
// failure metric. They are never built at run time.
type Reason string

// The ways a login can fail, in the order of the flow.
const (
	// WrongState: the callback's state matches no login this browser
	// started (no flow cookie for it, one sealed by another key, expired or
	// tampered with): a forged or stale callback, or a second use of one.
	WrongState Reason = "wrong_state"
	// IdPError: the identity provider answered the authorization request
	// with an error (e.g. access_denied), or the token endpoint with one
	// other than invalid_grant.
	IdPError Reason = "idp_error"
	// BadCallback: the callback carried neither a code nor an error.
	BadCallback Reason = "bad_callback"
	// ReplayedCode: the token endpoint refused the code with invalid_grant
	// (RFC 6749 §5.2: used already, expired, or issued for another client,
	// redirect URI or PKCE verifier).
	ReplayedCode Reason = "replayed_code"
	// ExchangeFailed: the token endpoint could not be reached or gave an
	// answer that is not an RFC 6749 §5.1 token response.
	ExchangeFailed Reason = "exchange_failed"
	// BadIDToken: no ID token, or one that the verifier refused, or one
	// from another issuer, for another audience or authorized party
	// (OpenID Connect Core §3.1.3.7).
	BadIDToken Reason = "bad_id_token"
	// BadNonce: the ID token's nonce is not the one this login sent.
	BadNonce Reason = "bad_nonce"
	// SessionTooLarge: the sealed session does not fit one cookie; the
	// kept claims must be fewer (no cookie is ever split).
	SessionTooLarge Reason = "session_too_large"
	// Unavailable: the provider's discovery document could not be read.
	Unavailable Reason = "unavailable"
)

// Reasons lists every Reason, so a recorder can create each series from the
// start.
var Reasons = []Reason{
	WrongState, IdPError, BadCallback, ReplayedCode, ExchangeFailed,
	BadIDToken, BadNonce, SessionTooLarge, Unavailable,
}

// Login events, the label values of logins counted.
const (
	EventStarted   = "started"
	EventCompleted = "completed"
)

// Events lists every login event.
var Events = []string{EventStarted, EventCompleted}

// RefreshOutcomes lists every refresh outcome.
var RefreshOutcomes = []string{RefreshOK, RefreshFailed}

// Refresh outcomes, the label values of session refreshes.
const (
	RefreshOK     = "refreshed"
	RefreshFailed = "failed"
)

// Recorder counts what the login does. The metrics package implements it;
// the default records nothing. Label values come only from the constants
// above.
type Recorder interface {
	// LoginStarted counts a browser sent to the identity provider.
	LoginStarted()
	// LoginCompleted counts a callback that set a session.
	LoginCompleted()
	// LoginFailed counts a callback that did not.
	LoginFailed(reason Reason)
	// SessionRefreshed counts a refresh-token grant made for a session, by
	// outcome (RefreshOK, RefreshFailed).
	SessionRefreshed(outcome string)
}

type nopRecorder struct{}

func (nopRecorder) LoginStarted()           {}
func (nopRecorder) LoginCompleted()         {}
func (nopRecorder) LoginFailed(Reason)      {}
func (nopRecorder) SessionRefreshed(string) {}
