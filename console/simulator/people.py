"""The simulated wearers' personal records (GET /wearers/{id}): language, phone,
order conditions, suspensions. Made from the seed and the wearer's index, so a
wearer is the same person on every request and after a restart."""

from __future__ import annotations

import random

from console.domain import DAY, CaseEntry, DeviceKind
from console.protocol import schema
from console.simulator.fleet import Fleet

LANGUAGES = [("English", 80), ("Polish", 5), ("Romanian", 4), ("Urdu", 3), ("Punjabi", 2),
             ("Arabic", 2), ("Lithuanian", 2), ("Portuguese", 2)]
INTERPRETER_SHARE = 0.6  # of those whose language is not English
NO_PHONE_SHARE = 0.08  # phone numbers missing from the record (ICIBI §5.92)
FITTED_BY = 1_780_000_000.0  # 2026-05-28: a fixed day, so that a device's fitting never moves
SERIAL_PREFIX = {DeviceKind.GPS: "GT", DeviceKind.RF: "RF", DeviceKind.NFD: "CK",
                 DeviceKind.WRISTBAND: "WB"}
ORDER_KINDS = ["Community order", "Suspended sentence order", "Home detention curfew licence",
               "Bail condition"]
EXCLUSION_ZONES = ["the victim's home street", "the city centre", "Victoria Park",
                   "the retail park"]


def wearer_record(fleet: Fleet, i: int, case: list[CaseEntry]) -> schema.WearerRecord:
    rng = random.Random(f"{fleet.seed}:{i}")
    wearer, device = fleet.wearers[i], fleet.devices[i]
    names, weights = zip(*LANGUAGES, strict=True)
    language = rng.choices(names, weights)[0]
    interpreter = language != "English" and rng.random() < INTERPRETER_SHARE
    phone = None if rng.random() < NO_PHONE_SHARE else f"07{rng.randrange(10**8, 10**9)}"
    fitted = FITTED_BY - rng.uniform(0, 300) * DAY
    devices = [schema.DeviceRecord(device.id, device.kind,
                                   f"{SERIAL_PREFIX[device.kind]}-{rng.randrange(10**6):06d}",
                                   schema.wire_time(fitted))]
    conditions = [f"{rng.choice(ORDER_KINDS)}, electronic monitoring"]
    if wearer.curfew is not None:
        conditions.append(f"Curfew {wearer.curfew} at the home address, every night")
    if device.kind is DeviceKind.GPS and rng.random() < 0.4:
        conditions.append(f"Exclusion zone: {rng.choice(EXCLUSION_ZONES)}")
    suspensions = [schema.Suspension.from_domain(s) for s in fleet.suspensions(i, fleet.now)]
    alerts = sorted((a for a in fleet.alerts.values() if a.wearer_id == wearer.id),
                    key=lambda a: a.raised_at, reverse=True)
    return schema.WearerRecord(
        schema.Wearer.from_domain(wearer), devices, language, interpreter, phone, conditions,
        suspensions, [schema.Alert.from_domain(a) for a in alerts[:schema.MAX_RECORD_ALERTS]],
        [schema.CaseEntry.from_domain(e) for e in case])
