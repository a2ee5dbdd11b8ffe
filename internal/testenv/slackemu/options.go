package slackemu

import (
	"log/slog"
	"net/http"
	"time"
)

// Defaults used when the corresponding option is not given. They are
// exported so tests can build clients without repeating literals.
const (
	DefaultBotToken          = "xoxb-0000000001-0000000001-emulatorbottoken"
	DefaultAppToken          = "xapp-1-A0PULLFIX1-0000000001-emulatorapptoken"
	DefaultSigningSecret     = "8f742231b10e8888abcd99emulator5a5"
	DefaultVerificationToken = "emulator-verification-token"
	DefaultTeamID            = "T0PULLFIX1"
	DefaultTeamDomain        = "pullfix-test"
	DefaultAppID             = "A0PULLFIX1"
	DefaultBotUserID         = "U0PULLFIXB"
	DefaultBotID             = "B0PULLFIXB"
	DefaultBotName           = "pullfix"

	// DefaultPostRate and DefaultPostBurst pace chat.postMessage per channel:
	// Slack "generally allows one message per second per channel" with short
	// bursts.
	DefaultPostRate  = 1.0
	DefaultPostBurst = 3

	// DefaultUpdateLimit and DefaultUpdateWindow are chat.update's Tier 3
	// limit: "50+ per minute", counted per method per workspace per app,
	// in per-minute windows (https://api.slack.com/docs/rate-limits,
	// https://docs.slack.dev/apis/web-api/rate-limits; chat.update is Tier 3
	// in Slack's own java-slack-sdk MethodsRateLimits; facts/slack.md §5).
	// The emulator holds the app to exactly 50 in any sliding 60 s window,
	// which is no more lenient than a fixed per-minute window ever is.
	DefaultUpdateLimit  = 50
	DefaultUpdateWindow = time.Minute

	// DefaultPingInterval is how often the emulator sends WebSocket PING
	// frames. slack-go reconnects when it sees none for 30 s.
	DefaultPingInterval = 5 * time.Second

	// DefaultAckTimeout is Slack's 3-second acknowledgement deadline.
	DefaultAckTimeout = 3 * time.Second

	// DefaultDisconnectGrace is how long a connection told to disconnect
	// stays open before the emulator closes it (Slack keeps it briefly so the
	// client can open a new one first).
	DefaultDisconnectGrace = 10 * time.Second

	// responseURLUses and responseURLTTL: a response_url may be used up to 5
	// times within 30 minutes.
	responseURLUses = 5
	responseURLTTL  = 30 * time.Minute
)

type config struct {
	botToken          string
	appToken          string
	signingSecret     string
	verificationToken string
	teamID            string
	teamDomain        string
	appID             string
	botUserID         string
	botID             string
	botName           string
	postRate          float64
	postBurst         int
	updateLimit       int
	updateWindow      time.Duration
	pingInterval      time.Duration
	ackTimeout        time.Duration
	disconnectGrace   time.Duration
	urls              RequestURLs
	logger            *slog.Logger
	httpClient        *http.Client
}

func defaultConfig() config {
	return config{
		botToken:          DefaultBotToken,
		appToken:          DefaultAppToken,
		signingSecret:     DefaultSigningSecret,
		verificationToken: DefaultVerificationToken,
		teamID:            DefaultTeamID,
		teamDomain:        DefaultTeamDomain,
		appID:             DefaultAppID,
		botUserID:         DefaultBotUserID,
		botID:             DefaultBotID,
		botName:           DefaultBotName,
		postRate:          DefaultPostRate,
		postBurst:         DefaultPostBurst,
		updateLimit:       DefaultUpdateLimit,
		updateWindow:      DefaultUpdateWindow,
		pingInterval:      DefaultPingInterval,
		ackTimeout:        DefaultAckTimeout,
		disconnectGrace:   DefaultDisconnectGrace,
		logger:            slog.New(slog.DiscardHandler),
	}
}

// Option configures an Emulator.
type Option func(*config)

// WithTokens sets the accepted bot (xoxb-) and app-level (xapp-) tokens.
// Default: DefaultBotToken and DefaultAppToken.
func WithTokens(bot, app string) Option {
	return func(c *config) { c.botToken, c.appToken = bot, app }
}

// WithSigningSecret sets the secret used to sign HTTP-mode requests.
// Default: DefaultSigningSecret.
func WithSigningSecret(secret string) Option {
	return func(c *config) { c.signingSecret = secret }
}

// WithTeam sets the workspace id and domain. Default: DefaultTeamID,
// DefaultTeamDomain.
func WithTeam(id, domain string) Option {
	return func(c *config) { c.teamID, c.teamDomain = id, domain }
}

// WithBot sets the app id, the bot's user id, bot id and name that auth.test
// reports and posted messages carry. Default: DefaultAppID, DefaultBotUserID,
// DefaultBotID, DefaultBotName.
func WithBot(appID, userID, botID, name string) Option {
	return func(c *config) { c.appID, c.botUserID, c.botID, c.botName = appID, userID, botID, name }
}

// WithPostRate paces chat.postMessage per channel: perSecond sustained with
// bursts of burst messages; beyond that the call answers HTTP 429 with
// Retry-After. perSecond <= 0 disables pacing. Default: DefaultPostRate,
// DefaultPostBurst.
func WithPostRate(perSecond float64, burst int) Option {
	return func(c *config) { c.postRate, c.postBurst = perSecond, max(burst, 1) }
}

// WithUpdateRate limits chat.update to limit calls in any sliding window
// of length window for the whole workspace (Slack's Tier 3: 50 per
// minute); beyond that the call answers HTTP 429 with Retry-After, the
// seconds until the oldest call in the window leaves it. limit <= 0
// disables the limit. Default: DefaultUpdateLimit per DefaultUpdateWindow.
func WithUpdateRate(limit int, window time.Duration) Option {
	return func(c *config) { c.updateLimit, c.updateWindow = limit, window }
}

// WithPingInterval sets how often WebSocket PING frames are sent.
// Default: DefaultPingInterval.
func WithPingInterval(d time.Duration) Option {
	return func(c *config) { c.pingInterval = d }
}

// WithAckTimeout sets how long SlashCommand, Click and Event wait for the
// app's acknowledgement. Default: DefaultAckTimeout (Slack's 3 s).
func WithAckTimeout(d time.Duration) Option {
	return func(c *config) { c.ackTimeout = d }
}

// WithDisconnectGrace sets how long a connection that was sent a
// `disconnect` message stays open. Default: DefaultDisconnectGrace.
func WithDisconnectGrace(d time.Duration) Option {
	return func(c *config) { c.disconnectGrace = d }
}

// RequestURLs are the app's HTTP endpoints. When a URL is set, that kind of
// request is POSTed there, signed, instead of being sent over Socket Mode.
type RequestURLs struct {
	SlashCommands string // slash command request URL
	Interactivity string // interactivity request URL (block_actions)
	Events        string // Events API request URL
}

// WithRequestURLs switches deliveries to HTTP mode. Default: none (Socket
// Mode).
func WithRequestURLs(u RequestURLs) Option {
	return func(c *config) { c.urls = u }
}

// WithHTTPClient sets the client used to POST HTTP-mode requests (e.g. one
// that trusts a test TLS server); the ack timeout still bounds each request.
// Default: a fresh http.Client.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithLogger sets the logger. Tokens are never logged. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
