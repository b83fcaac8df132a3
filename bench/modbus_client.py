"""Modbus TCP client cost: CPU per request, pymodbus's client against PumpWatch's own.

    python -m bench.modbus_client [--registers 20] [--requests 5000] [--repeat 3]

One simulated device (`simulators.modbus_server.DeviceServer`, `--registers` uint16 holding registers)
runs in a separate process; this process sends `--requests` reads of all its registers one after
another, first through pymodbus's `AsyncModbusTcpClient` (as `collector.sources.modbus_bus` drives it:
`read_with`, no retries) and then through `collector.sources.modbus_link.TcpLink` (PumpWatch's client),
alternating `--repeat` times. Per run: requests/s and CPU of this process per request (the device's CPU
is not counted). Both read the same words; the benchmark checks each answer's length.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient

from bench import modbus_poll
from bench.common import machine, print_table, process_cpu, write_results
from collector.sources.modbus_link import TcpLink, read_with
from pumpwatch.site import ModbusDevice, Table

Read = Callable[[], Awaitable[list[int]]]


async def pymodbus_reader(device: ModbusDevice, count: int) -> tuple[Read, Callable[[], None]]:
    """A read of `count` registers through pymodbus's client, and how to close it."""
    client = AsyncModbusTcpClient(device.host, port=device.port, timeout=device.timeout, retries=0,
                                  reconnect_delay=0)
    if not await client.connect():
        raise RuntimeError(f"pymodbus could not connect to {device.host}:{device.port}")
    return (lambda: read_with(client, device.unit, Table.HOLDING, 0, count, device.timeout * 2)), client.close


async def pumpwatch_reader(device: ModbusDevice, count: int) -> tuple[Read, Callable[[], None]]:
    """A read of `count` registers through PumpWatch's `TcpLink`, and how to close it."""
    link = TcpLink(device)
    why = await link.open()
    if why is not None:
        raise RuntimeError(why)

    async def read() -> list[int]:
        return (await link.read(device.unit, Table.HOLDING, 0, count, device.timeout, time.time))[1]

    return read, link.close


async def measure(make: Callable[[ModbusDevice, int], Awaitable[tuple[Read, Callable[[], None]]]],
                  device: ModbusDevice, count: int, requests: int) -> dict[str, float]:
    """Requests one after another: requests/s and µs of this process's CPU per request."""
    read, close = await make(device, count)
    try:
        for _ in range(200):  # connection and caches warm
            await read()
        cpu0, t0 = process_cpu(), time.perf_counter()
        for _ in range(requests):
            words = await read()
            if len(words) != count:
                raise RuntimeError(f"asked for {count} registers, got {len(words)}")
        elapsed, cpu = time.perf_counter() - t0, process_cpu() - cpu0
    finally:
        close()
    return {"requests_per_s": requests / elapsed, "cpu_us_per_request": 1e6 * cpu / requests}


async def run(args: argparse.Namespace, device: ModbusDevice) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    clients = {"pymodbus AsyncModbusTcpClient": pymodbus_reader, "PumpWatch TcpLink": pumpwatch_reader}
    for attempt in range(args.repeat):
        for name, make in clients.items():
            rows.append({"client": name, "run": attempt + 1,
                         **await measure(make, device, args.registers, args.requests)})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.modbus_client",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--registers", type=int, default=20, help="registers per read (default 20)")
    parser.add_argument("--requests", type=int, default=5000, help="requests measured per run (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client, alternating (default 3)")
    parser.add_argument("--name", default="modbus_client", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    servers_args = argparse.Namespace(devices=1, registers=args.registers, stride=1, interval=1.0)
    proc, servers, ports = modbus_poll.spawn_servers(servers_args)
    try:
        device = modbus_poll.make_devices(1, args.registers, 1, 1.0, ports)[0]
        rows = asyncio.run(run(args, device))
    finally:
        modbus_poll.stop_servers(proc, servers)
    print_table(f"Modbus TCP client: reads of {args.registers} holding registers, one at a time, "
                f"{args.requests:,} per run",
                ["client", "run", "requests/s", "µs CPU / request"],
                [[r["client"], r["run"], r["requests_per_s"], r["cpu_us_per_request"]] for r in rows])
    path = write_results(args.name, {"benchmark": "modbus_client", "command": "python -m bench.modbus_client",
                                     "machine": machine(), "settings": vars(args), "runs": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
