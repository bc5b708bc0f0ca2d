"""The one settings object, read from the environment once, in the composition root."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twap_schemas.requests import Limits


class Settings(BaseSettings):
    """Every setting takes the `TWAP_` prefix unless it names another system (`ALPACA_*`)."""

    model_config = SettingsConfigDict(env_prefix="TWAP_", extra="ignore", populate_by_name=True)

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@localhost:5672/"), description="RabbitMQ URL"
    )
    database_url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///twap.db"),
        description="SQLAlchemy async URL (sqlite+aiosqlite:///… or postgresql+asyncpg://…)",
    )
    namespace: str = Field(
        default="twap", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="prefix of every name"
    )
    broker: Literal["sim", "alpaca"] = Field(default="sim", description="sim or alpaca")

    alpaca_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ALPACA_API_KEY", "APCA_API_KEY_ID")
    )
    alpaca_secret_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY")
    )
    alpaca_paper: bool = Field(default=True, validation_alias=AliasChoices("ALPACA_PAPER"))
    alpaca_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ALPACA_BASE_URL", "APCA_API_BASE_URL")
    )
    alpaca_stream_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ALPACA_STREAM_URL"),
        description="trade updates websocket; unset: derived from ALPACA_BASE_URL, else Alpaca's",
    )
    alpaca_data_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ALPACA_DATA_URL"),
        description="market data REST root (quotes); unset: Alpaca's own",
    )
    stream_reconnect_wait_seconds: float = Field(
        default=1.0, gt=0, description="first wait before reconnecting a broker stream"
    )
    stream_reconnect_wait_cap_seconds: float = Field(
        default=30.0, gt=0, description="longest wait before reconnecting a broker stream"
    )
    quote_cache_seconds: float = Field(
        default=1.0, ge=0, description="how long a broker quote is reused (0: never)"
    )

    broker_timeout_seconds: float = Field(
        default=10.0, gt=0, description="timeout of every broker HTTP request"
    )
    broker_rate_limit_per_minute: int = Field(
        default=200, ge=1, description="client-side limit of broker requests per minute"
    )
    broker_max_concurrency: int = Field(
        default=4, ge=1, description="broker calls in flight at once (worker threads)"
    )
    max_in_flight: int = Field(
        default=0, ge=0,
        description="slices between claim and outcome at once (the rest wait in order of due "
        "time); 0: the database pool plus the broker's concurrency",
    )
    db_pool_size: int = Field(
        default=10, ge=1,
        description="PostgreSQL connections for the slices in flight; the pool keeps 5 more "
        "open (SQLite: one)",
    )

    retry_attempts: int = Field(default=3, ge=1, le=10, description="broker attempts per slice")
    retry_wait_seconds: float = Field(default=2.0, ge=0, description="first backoff wait")
    retry_wait_cap_seconds: float = Field(default=8.0, ge=0, description="longest backoff wait")
    misfire_grace_seconds: int = Field(default=60, ge=1, description="how late a slice may go")
    breaker_max_failures: int = Field(default=5, ge=1, description="failures that trip it")

    authz: Literal["on", "off"] = Field(
        default="off",
        description="on: every request's AMQP user_id needs a grant for its strategy and "
        "action, control messages the operator role; off (embedded use): everything allowed",
    )
    quote_timeout_seconds: float = Field(
        default=2.0, gt=0, description="how long a risk check waits for a reference price")

    max_qty: int = Field(default=10_000_000, ge=1, description="largest qty accepted")
    max_slices: int = Field(default=10_000, ge=1, description="most slices per parent")
    max_duration_seconds: int = Field(default=86_400, ge=1, le=86_400)

    prefetch: int = Field(default=256, ge=1, description="unacked requests per consumer")
    batch_size: int = Field(default=128, ge=1, description="requests written per transaction")
    batch_wait_ms: float = Field(
        default=5.0, ge=0,
        description="how long the next batch may gather while one is being written",
    )
    intake_poll_seconds: float = Field(
        default=0.2, gt=0, le=5,
        description="how long the idle request consumer waits for a delivery before it looks "
        "whether the worker is stopping (a stop waits up to this long for it)",
    )
    intake_concurrency: int = Field(
        default=2, ge=1,
        description="intake transactions in flight at once (batches sharing a parent never)",
    )
    requeue_delay_seconds: float = Field(
        default=1.0, ge=0, description="backoff before requeueing when the database is away"
    )
    outbox_batch: int = Field(default=500, ge=1, description="events relayed per round")
    outbox_gather_ms: float = Field(
        default=5.0, ge=0, description="how long the relay lets commits gather before a round"
    )
    shutdown_timeout_seconds: float = Field(default=30.0, ge=0)
    gc_reclaim_seconds: float = Field(
        default=3600.0, ge=0,
        description="how often the garbage collector's frozen objects are collected once, at a "
        "quiet moment (one full pass: reference cycles kept by the freeze are freed); 0: never",
    )
    heap_trim_seconds: float = Field(
        default=1.0, ge=0,
        description="how often the worker looks for a quiet moment after work or a reclaim (no "
        "slice in flight, no request batch in hand, none due within 0.5 s) to give the C heap's "
        "free pages back to the OS once (malloc_trim, glibc only); 0: never",
    )
    sweep_seconds: float = Field(
        default=5.0, gt=0, le=60,
        description="how often the sweeper expires overdue slices, completes parents and settles "
        "slices left submitting",
    )
    stats_interval_seconds: float = Field(
        default=60.0, ge=0, description="how often `scheduler.stats` is logged; 0 turns it off"
    )

    sim_ledger_path: Path | None = Field(
        default=None, description="sim broker: file that keeps its orders across restarts"
    )
    sim_latency_ms: float = Field(default=0.0, ge=0, description="sim broker: answer delay")
    sim_prices: str = Field(
        default="", description="sim market: reference prices, e.g. AAPL=190.25,MSFT=410; an "
        "unlisted symbol gets a fixed price from its name, between 10 and 500",
    )
    sim_volatility_bps: Decimal = Field(
        default=Decimal(0), ge=0, description="sim market: random walk, bps per second's root"
    )
    sim_spread_bps: Decimal = Field(
        default=Decimal(2), ge=0, lt=20_000, description="sim market: bid-ask spread in bps"
    )
    sim_fill_qty: int = Field(
        default=0, ge=0, description="sim market: most shares per fill (0: all at once)"
    )
    sim_fill_interval_ms: float = Field(
        default=200.0, gt=0, description="sim market: time between two fills of an order"
    )
    reconcile_seconds: float = Field(
        default=30.0, gt=0,
        description="look up at the broker any working order without news for this long",
    )

    @field_validator("sim_prices")
    @classmethod
    def _sim_prices(cls, value: str) -> str:
        parse_prices(value)  # raises ValueError naming the bad pair
        return value

    @property
    def sim_price_table(self) -> dict[str, Decimal]:
        """TWAP_SIM_PRICES parsed: symbol → reference price."""
        return parse_prices(self.sim_prices)

    http_host: str = Field(
        default="127.0.0.1", description="address of /metrics, /healthz, /readyz"
    )
    http_port: int = Field(default=9464, ge=0, le=65535, description="0 turns the HTTP server off")

    log_level: str = Field(default="INFO")
    log_json: bool | None = Field(default=None, description="JSON lines; default: when not a tty")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_qty=self.max_qty,
            max_slices=self.max_slices,
            max_duration_seconds=self.max_duration_seconds,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")

    @property
    def in_flight_limit(self) -> int:
        """`max_in_flight`, or derived: a slice in flight holds at most one database connection
        (SQLite has one) or one broker call at a time."""
        if self.max_in_flight:
            return self.max_in_flight
        return (1 if self.is_sqlite else self.db_pool_size) + self.broker_max_concurrency


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def parse_prices(text: str) -> dict[str, Decimal]:
    """`AAPL=190.25,MSFT=410` → {"AAPL": 190.25, "MSFT": 410}; a bad pair names itself."""
    prices: dict[str, Decimal] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        symbol, sep, value = pair.partition("=")
        try:
            price = Decimal(value.strip())
        except ArithmeticError:
            price = Decimal(0)
        if not sep or not symbol.strip() or not price.is_finite() or price <= 0:
            raise ValueError(f"sim price {pair!r}: expected SYMBOL=positive decimal")
        prices[symbol.strip().upper()] = price
    return prices
