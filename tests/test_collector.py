"""Reference cycles holding Qt objects are freed on the GUI thread only: freed by a
collection that another thread's allocations triggered, a widget left its timers
and animations registered with the GUI thread, and the process crashed later."""

import gc
import threading
import weakref

from PySide6.QtCore import QObject

import ui.bridge
from ui.bridge import GuiBridge, tune_collector


def test_a_cycle_holding_a_qt_object_is_freed_on_the_gui_thread_not_where_allocation_ran(qtbot):
    tune_collector(GuiBridge())
    try:
        freed_on = []
        holder = type("Holder", (), {})()
        holder.me, holder.obj = holder, QObject()  # a cycle, as widgets and their slots make
        # Run by the thread whose collection frees the cycle, with its Qt object.
        weakref.finalize(holder, lambda: freed_on.append(threading.current_thread()))
        del holder
        kept = []  # what the other thread allocates stays: three times the threshold
        churn = threading.Thread(target=lambda: kept.extend([] for _ in range(300_000)))
        churn.start()
        churn.join()
        assert freed_on == []  # not collected there
        qtbot.waitUntil(lambda: bool(freed_on), timeout=3000)
        assert freed_on == [threading.main_thread()]
    finally:
        ui.bridge._collector.deleteLater()
        ui.bridge._collector = None
        gc.enable()
        gc.set_threshold(700, 10, 10)
