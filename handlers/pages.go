package handlers

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/static"
	"github.com/connectlumin/app/store"
	"github.com/connectlumin/app/views"
)

// profileMaxAge bounds the session's profile cache: Lumin's draft limits /user/info to
// 50 calls per 30 min, so never fetch it per view (security.md §5.2, lumin-api.md §19).
const profileMaxAge = 10 * time.Minute

// scopeDescriptions explain scopes in plain words (lumin-api.md §13).
var scopeDescriptions = map[string]string{
	"openid":             "Know who you are (name and email)",
	"offline_access":     "Stay connected without asking you again",
	"profile.read":       "Read your Lumin profile",
	"profile.settings":   "Manage your Lumin account settings",
	"sign:requests.read": "See your signature requests",
	"sign:requests":      "Send, see, cancel and remind your signature requests",
	"templates":          "Use your Lumin templates",
	"pdf:files.read":     "Read your documents",
	"pdf:files":          "Manage your documents",
	"workspaces.read":    "See the workspace you choose",
	"workspaces":         "Manage the workspace you choose",
}

func describeScopes(scopes []string) []views.Scope {
	out := make([]views.Scope, 0, len(scopes))
	for _, sc := range scopes {
		d, ok := scopeDescriptions[sc]
		if !ok {
			d = "Other access"
		}
		out = append(out, views.Scope{Name: sc, Description: d})
	}
	return out
}

// handleHome is GET /: the landing page. After POST /auth/disconnect it shows a fixed
// "disconnected" notice when the query says exactly disconnected=1; the value itself is
// never rendered (security.md §9.3, §9.5).
func (s *Server) handleHome(c echo.Context) error {
	m := views.HomeModel{Page: s.pageModel(c, "Connect your Lumin account"),
		Disconnected: c.QueryParam("disconnected") == "1"}
	return s.render(c, http.StatusOK, views.Home(m))
}

// handleHealthz is GET /healthz: liveness only; it stays 200 while Lumin is down
// (security.md §13.3).
func (s *Server) handleHealthz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.String(http.StatusOK, "ok")
}

// handleStatic is GET /static/*: content-hashed embedded assets, cached for a year.
func (s *Server) handleStatic(c echo.Context) error {
	if !static.Serve(c.Response(), c.Request(), c.Param("*")) {
		return echo.ErrNotFound
	}
	return nil
}

// handleDashboard is GET /dashboard (connected only): the profile, what was granted, the
// signature-request summary, and logout/disconnect.
func (s *Server) handleDashboard(c echo.Context) error {
	sess := s.session(c)
	ctx := c.Request().Context()
	stale := false
	if s.now().Sub(sess.ProfileFetchedAt) > profileMaxAge {
		u, err := s.api.UserInfo(ctx, s.tokenSource(c))
		switch {
		case err == nil:
			sess.Name, sess.Email, sess.ProfileFetchedAt = u.Name, u.Email, s.now()
			if err := s.saveSession(c, sess); err != nil {
				return err
			}
		case needsReconnect(err):
			return err
		default:
			// Lumin is slow or down: the cached profile is better than an error page.
			stale = true
			s.log.Warn("profile refresh failed", "reason", "profile_unavailable", "request_id", requestIDOf(c), "err", errKind(err))
		}
	}
	_, _ = s.discover(ctx) // best effort: lets CSP form-action name the end-session origin

	page := s.pageModel(c, "Dashboard")
	page.Current = "dashboard"
	m := views.DashboardModel{
		Page:         page,
		Name:         sess.Name,
		Email:        sess.Email,
		ProfileStale: stale,
		Scopes:       describeScopes(sess.Scopes),
		TokenExpiry:  sess.Expiry,
		CanRefresh:   sess.RefreshToken != "",
		ConnectedAt:  sess.CreatedAt,
		Requests:     s.requestsSummary(c, sess),
	}
	return s.render(c, http.StatusOK, views.Dashboard(m))
}

// requestsSummary fills the dashboard's signature-request section from the store
// (requests.go); a store failure degrades to a notice, never an error page.
func (s *Server) requestsSummary(c echo.Context, sess *store.Session) views.RequestsSummary {
	sum, err := s.loadRequestsSummary(c.Request().Context(), sess)
	if err != nil {
		s.log.Warn("requests summary failed", "request_id", requestIDOf(c), "err", err.Error())
		return views.RequestsSummary{CanSend: slices.Contains(sess.Scopes, "sign:requests"),
			Notice: "Your saved signature requests could not be loaded just now."}
	}
	return sum
}

// needsReconnect reports whether err means the Lumin connection is gone for good.
func needsReconnect(err error) bool {
	var ae *lumin.APIError
	return errors.Is(err, errReconnect) || (errors.As(err, &ae) && ae.Status == http.StatusUnauthorized)
}
