package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
)

// sessionTokens is the lumin.TokenSource of one request, backed by its cookie session.
// A refresh is written into the session and the cookie is saved BEFORE the new access
// token is handed out: the old refresh token is dead at Lumin the moment it rotated, so
// a lost write would end the connection (security.md §7.2, lumin-api.md §7). The mutex
// lets a handler fan out API calls in goroutines and still refresh once per request;
// across requests the RP single-flights per refresh token (security.md §7.3).
type sessionTokens struct {
	s  *Server
	c  echo.Context
	mu sync.Mutex
}

// tokenSource returns the request's token source (one per request, so concurrent calls
// in the same request share it). Seam for the signature-request pages: pass it to every
// lumin.API call; map its errors by returning them.
func (s *Server) tokenSource(c echo.Context) lumin.TokenSource {
	if ts, ok := c.Get(ctxTokens).(*sessionTokens); ok {
		return ts
	}
	ts := &sessionTokens{s: s, c: c}
	c.Set(ctxTokens, ts)
	return ts
}

// AccessToken implements lumin.TokenSource: refresh first when the token expires within
// 60 s (security.md §7.1).
func (t *sessionTokens) AccessToken(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sess, err := t.current()
	if err != nil {
		return "", err
	}
	// A set taken from the rotation map is at most 60 s old: use it as it is, as
	// RP.Refresh does, instead of rotating it again at once; if Lumin still refuses
	// it, the API's 401 path refreshes once (security.md §7.4, §8.4).
	if rotated, _ := t.c.Get(ctxRotated).(bool); rotated || !t.s.rp.NeedsRefresh(tokensOf(sess)) {
		return sess.AccessToken, nil
	}
	return t.refreshLocked(ctx, sess)
}

// current returns the connected session with the newest token set known; t.mu is held.
func (t *sessionTokens) current() (*store.Session, error) {
	sess := t.s.session(t.c)
	if !sess.Connected() {
		return nil, errReconnect
	}
	if err := t.preferLatest(sess); err != nil {
		return nil, err
	}
	return sess, nil
}

// preferLatest switches the session to the rotated token set when another request
// rotated this one's refresh token meanwhile (security.md §7.4): the old access token
// may already be revoked and the old refresh token must never be sent again.
func (t *sessionTokens) preferLatest(sess *store.Session) error {
	nt, ok := t.s.rp.Latest(tokensOf(sess))
	if !ok {
		return nil
	}
	applyTokens(sess, nt)
	t.c.Set(ctxRotated, true)
	return t.s.saveSession(t.c, sess)
}

// Refreshed implements lumin.TokenSource: after an API 401 with stale, refresh once —
// unless this request already did, in which case the newer token is the answer
// (security.md §8.4).
func (t *sessionTokens) Refreshed(ctx context.Context, stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sess, err := t.current()
	if err != nil {
		return "", err
	}
	if sess.AccessToken != stale {
		return sess.AccessToken, nil
	}
	return t.refreshLocked(ctx, sess)
}

func (t *sessionTokens) refreshLocked(ctx context.Context, sess *store.Session) (string, error) {
	nt, err := t.s.rp.Refresh(ctx, tokensOf(sess), identityOf(sess))
	switch {
	case errors.Is(err, lumin.ErrInvalidGrant), errors.Is(err, lumin.ErrNoRefreshToken):
		// The grant is gone (expired, revoked, or reuse detected — the whole chain is
		// dead): forget it and ask the user to reconnect, once (security.md §7.5).
		t.s.log.Warn("refresh rejected", "reason", "refresh_rejected", "request_id", requestIDOf(t.c), "user", sess.UserKey)
		dropConnection(sess)
		if serr := t.s.saveSession(t.c, sess); serr != nil {
			t.s.sessions.Clear(t.c.Response())
		}
		return "", fmt.Errorf("%w: %w", errReconnect, err)
	case errors.Is(err, lumin.ErrIDToken):
		// A refreshed ID token that names someone else ends the session (security.md §4.9).
		t.s.log.Warn("refresh id token mismatch", "reason", "id_token_invalid", "request_id", requestIDOf(t.c), "user", sess.UserKey)
		t.s.sessions.Clear(t.c.Response())
		t.c.Set(ctxSession, (*store.Session)(nil))
		return "", fmt.Errorf("%w: %w", errReconnect, err)
	case err != nil:
		// ErrConcurrentRefresh keeps the session and asks for a reload (§7.6); ErrUpstream
		// keeps it and the next user action retries (§7.7). Never resend here.
		return "", err
	}
	applyTokens(sess, nt)
	if err := t.s.saveSession(t.c, sess); err != nil {
		return "", err
	}
	return sess.AccessToken, nil
}

// applyTokens writes a refreshed token set into the session.
func applyTokens(sess *store.Session, nt lumin.Tokens) {
	sess.AccessToken = nt.AccessToken
	if nt.RefreshToken != "" { // a response without one keeps the old (security.md §7.2)
		sess.RefreshToken = nt.RefreshToken
	}
	if nt.IDToken != "" {
		sess.IDToken = nt.IDToken
	}
	sess.Expiry = nt.Expiry
	if len(nt.Scopes) > 0 {
		sess.Scopes = nt.Scopes
	}
}

// dropConnection forgets the Lumin connection (tokens and the cached profile) but keeps
// the session itself (security.md §9.3).
func dropConnection(sess *store.Session) {
	sess.AccessToken, sess.RefreshToken, sess.IDToken = "", "", ""
	sess.Expiry, sess.ProfileFetchedAt = time.Time{}, time.Time{}
	sess.Scopes = nil
	sess.Name, sess.Email = "", ""
}

func tokensOf(sess *store.Session) lumin.Tokens {
	return lumin.Tokens{
		AccessToken:  sess.AccessToken,
		RefreshToken: sess.RefreshToken,
		IDToken:      sess.IDToken,
		Expiry:       sess.Expiry,
		Scopes:       sess.Scopes,
	}
}

// identityOf rebuilds the login identity from the session's user key "iss|sub"; the
// RP compares a refreshed ID token against it (security.md §4.9).
func identityOf(sess *store.Session) lumin.Identity {
	iss, sub, _ := strings.Cut(sess.UserKey, "|")
	return lumin.Identity{Issuer: iss, Subject: sub, Email: sess.Email, Name: sess.Name, AuthTime: sess.AuthTime}
}

// staticTokens is a TokenSource over a token set that cannot be refreshed: used right
// after the code exchange, before a session exists.
type staticTokens string

func (t staticTokens) AccessToken(context.Context) (string, error) { return string(t), nil }

func (t staticTokens) Refreshed(context.Context, string) (string, error) {
	return "", errReconnect
}
