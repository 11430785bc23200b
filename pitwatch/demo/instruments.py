"""The futures the demo platform trades: CME symbols with plausible prices and ticks."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    symbol: str
    name: str
    exchange: str
    tick: float  # minimum price increment
    multiplier: float  # USD per point
    price: float  # a plausible recent price, the start of the demo's random walk
    volatility: float  # typical relative move per trade


INSTRUMENTS = {
    i.symbol: i
    for i in (
        Instrument("ES", "E-mini S&P 500", "CME", 0.25, 50, 6020.00, 0.0004),
        Instrument("NQ", "E-mini Nasdaq-100", "CME", 0.25, 20, 21150.00, 0.0005),
        Instrument("YM", "E-mini Dow", "CBOT", 1.0, 5, 44300, 0.0004),
        Instrument("RTY", "E-mini Russell 2000", "CME", 0.10, 50, 2380.0, 0.0006),
        Instrument("CL", "Crude Oil", "NYMEX", 0.01, 1000, 69.85, 0.0008),
        Instrument("NG", "Henry Hub Natural Gas", "NYMEX", 0.001, 10000, 3.215, 0.0015),
        Instrument("GC", "Gold", "COMEX", 0.10, 100, 2655.0, 0.0004),
        Instrument("SI", "Silver", "COMEX", 0.005, 5000, 31.12, 0.0007),
        Instrument("ZN", "10-Year T-Note", "CBOT", 1 / 64, 1000, 110.5, 0.0002),
        Instrument("ZB", "U.S. Treasury Bond", "CBOT", 1 / 32, 1000, 117.25, 0.0003),
        Instrument("6E", "Euro FX", "CME", 0.00005, 125000, 1.0555, 0.0002),
        Instrument("6J", "Japanese Yen", "CME", 0.0000005, 12500000, 0.006525, 0.0003),
    )
}


def round_to_tick(symbol: str, price: float) -> float:
    tick = INSTRUMENTS[symbol].tick
    return round(round(price / tick) * tick, 8)
