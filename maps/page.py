"""The trail map's page, built by folium once per process with no trail in it: the
trail and the basemap are pushed in afterwards (maps/trail_map.py). Every asset is
ours, served by the emmap: scheme from resources/web/: folium's CDN links (Leaflet,
jQuery, Bootstrap, Font Awesome) are replaced by our vendored Leaflet, and the page
uses none of the rest."""

from __future__ import annotations

import functools

import folium
from branca.element import Element
from folium.elements import JSCSSMixin
from folium.template import Template

PAGE = "trail.html"  # emmap://app/trail.html
LEAFLET_JS = [("leaflet", "leaflet/leaflet.js")]
LEAFLET_CSS = [("leaflet_css", "leaflet/leaflet.css")]
UK = (54.4, -3.5)  # where the empty map looks, at zoom 5: the UK and Ireland

# First in the page: a script or style sheet that fails to load (a missing asset)
# is reported to Python, which says so in the console.
GUARD = """<script>
window.addEventListener("error", function (e) {
  var el = e.target;
  if (el && (el.tagName === "SCRIPT" || el.tagName === "LINK")) {
    console.debug("emmap:" + JSON.stringify({event: "failed",
      detail: "the map page could not load " + (el.src || el.href)}));
  }
}, true);
</script>"""


class TrailLayer(JSCSSMixin, folium.MacroElement):
    """Our page code (resources/web/trail.js, trail.css), started on the map."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            EM.start({{ this._parent.get_name() }});
        {% endmacro %}
    """)
    default_js = [("trail", "trail.js")]
    default_css = [("trail_css", "trail.css")]


def empty_map() -> folium.Map:
    """A folium map with our Leaflet and nothing on it: the canvas renderer for
    everything, no tiles (the basemap comes later)."""
    m = folium.Map(location=UK, zoom_start=5, tiles=None, prefer_canvas=True, control_scale=True,
                   min_zoom=3, max_zoom=19)
    m.default_js, m.default_css = LEAFLET_JS, LEAFLET_CSS
    return m


@functools.cache
def trail_page() -> bytes:
    """The page's HTML, built once (tens of milliseconds)."""
    m = empty_map()
    m._id = "trail"  # the page's script names it map_trail
    m.get_root().header.add_child(Element(GUARD), name="emmap_guard")
    m.add_child(TrailLayer())
    return m.get_root().render().encode()
