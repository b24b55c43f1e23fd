"""A replica of the default targets' front pages (targets.yaml), for throughput discovery.

Each site is served under its real name (inside the lab, whose resolvers answer for these names
and whose CA signs for them; nothing leaves the lab) with a front page shaped like the real one:
where its images, scripts and stylesheets live (the same host, a sibling host, the site's own CDN
as Facebook's on fbcdn.net, or only a platform's shared CDN), how it links them (relative URLs,
``<base href>``, ``srcset``, lazy-loading ``data-*`` attributes, preloads, ``og:image``), and how
large the page is (some over the probe's 64 KiB store cap, with their resources after it). Sizes
are typical of such sites, not measured: the probe cannot reach the real ones here.

``SITES`` feeds the unit tests of discovery (tests/measure/test_objects.py, no network), the lab
(the real ``probe run`` over targets.yaml, tests/e2e/test_lab.py) and bench/budget_throughput.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KIB, MIB = 1024, 1024 * 1024
STORE_CAP = 64 * KIB


@dataclass(frozen=True)
class ReplicaSite:
    name: str  # the target's name in targets.yaml
    url: str  # its URL there
    page: bytes
    # absolute URL -> (size, content type): what the site and its CDNs serve
    objects: dict[str, tuple[int, str]] = field(default_factory=dict)
    expect: str | None = None  # the URL discovery must choose (None: none, the SNI A/B)
    page_type: str = "text/html; charset=utf-8"

    @property
    def hosts(self) -> set[str]:
        from urllib.parse import urlsplit

        return {urlsplit(u).hostname or "" for u in [self.url, *self.objects]}


def _filler(n: int, word: str = "tin tuc ") -> str:
    """About ``n`` bytes of article teasers, as a front page's text."""
    teaser = f"<article><h3><a href='/a/{{i}}'>{word * 4}</a></h3><p>{word * 12}</p></article>"
    out, i = [], 0
    while sum(map(len, out)) < n:
        out.append(teaser.format(i=i))
        i += 1
    return "".join(out)


def _page(title: str, head: str, body: str, *, before: int = 0, after: int = 6000) -> bytes:
    """An HTML page: ``head`` in <head>, ``before`` bytes of teasers, ``body``, ``after`` more."""
    return (
        f"<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'><title>{title}</title>"
        f"{head}</head><body>{_filler(before)}{body}{_filler(after)}</body></html>"
    ).encode()


JPEG, PNG, WEBP, JS, CSS = "image/jpeg", "image/png", "image/webp", "text/javascript", "text/css"
WOFF2, MP4, ICO = "font/woff2", "video/mp4", "image/x-icon"
FB = "https://static.xx.fbcdn.net"
SITES: list[ReplicaSite] = [
    # Facebook's login page: everything on static.xx.fbcdn.net (its own CDN), rsrc.php bundles.
    ReplicaSite(
        "facebook",
        "https://www.facebook.com/",
        _page(
            "Facebook - log in or sign up",
            f"<link rel='stylesheet' href='{FB}/rsrc.php/v3/yO/l/0,cross/x9RqkK7JmN2.css'>"
            f"<link rel='preload' href='{FB}/rsrc.php/v3iYB4/yC/l/en_US/bigbundle.js' as='script'>"
            f"<script src='{FB}/rsrc.php/v3/yq/r/hVnBZbH2hXN.js' async></script>",
            f"<img class='fb_logo' src='{FB}/rsrc.php/y1/r/4lCu2zih0ca.svg' alt='Facebook'>"
            "<img src='https://www.facebook.com/tr?id=1&ev=PageView' width='1' height='1'>",
            after=52 * KIB,
        ),
        {
            f"{FB}/rsrc.php/v3/yO/l/0,cross/x9RqkK7JmN2.css": (90 * KIB, CSS),
            f"{FB}/rsrc.php/v3iYB4/yC/l/en_US/bigbundle.js": (1400 * KIB, JS),
            f"{FB}/rsrc.php/v3/yq/r/hVnBZbH2hXN.js": (180 * KIB, JS),
            f"{FB}/rsrc.php/y1/r/4lCu2zih0ca.svg": (2 * KIB, "image/svg+xml"),
        },
        expect=f"{FB}/rsrc.php/v3iYB4/yC/l/en_US/bigbundle.js",
    ),
    # An icon on the CDN itself: the target is its own only candidate, and far too small.
    ReplicaSite(
        "facebook-static-cdn",
        f"{FB}/favicon.ico",
        b"\0\0\1\0" + b"\x7f" * 1100,
        {},
        page_type=ICO,
    ),
    # A robots.txt: plain text, nothing to parse, nothing to measure but the SNI.
    ReplicaSite(
        "facebook-web",
        "https://web.facebook.com/robots.txt",
        b"# Notice: Crawling Facebook is prohibited\nUser-agent: *\nDisallow: /\n",
        {},
        page_type="text/plain",
    ),
    # YouTube: the player script on the site's own host (relative), thumbnails on i.ytimg.com.
    ReplicaSite(
        "youtube",
        "https://www.youtube.com/",
        _page(
            "YouTube",
            "<link rel='stylesheet' href='/s/desktop/2f1e3a1b/cssbin/www-main-desktop.css'>"
            "<script src='/s/desktop/2f1e3a1b/jsbin/desktop_polymer.vflset/desktop_polymer.js'>"
            "</script><script src='/s/player/4fcd6e4a/player_ias.vflset/en_US/base.js'></script>",
            "<img src='https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg' width='480'>",
            after=40 * KIB,
        ),
        {
            "https://www.youtube.com/s/desktop/2f1e3a1b/cssbin/www-main-desktop.css": (
                300 * KIB,
                CSS,
            ),
            "https://www.youtube.com/s/desktop/2f1e3a1b/jsbin/desktop_polymer.vflset/"
            "desktop_polymer.js": (900 * KIB, JS),
            "https://www.youtube.com/s/player/4fcd6e4a/player_ias.vflset/en_US/base.js": (
                2600 * KIB,
                JS,
            ),
            "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg": (30 * KIB, JPEG),
        },
        expect="https://www.youtube.com/s/player/4fcd6e4a/player_ias.vflset/en_US/base.js",
    ),
    # RFA (Arc XP): relative /resizer/ images with srcset widths; the largest is chosen.
    ReplicaSite(
        "rfa-vietnamese",
        "https://www.rfa.org/vietnamese/",
        _page(
            "Đài Á Châu Tự Do",
            "<link rel='stylesheet' href='/pf/resources/styles/rfa.css?d=88'>",
            "<img src='/resizer/v2/ABC.jpg?width=400' srcset='/resizer/v2/ABC.jpg?width=400 400w,"
            " /resizer/v2/ABC.jpg?width=800 800w, /resizer/v2/ABC.jpg?width=1600 1600w'>",
            before=20 * KIB,
        ),
        {
            "https://www.rfa.org/pf/resources/styles/rfa.css?d=88": (40 * KIB, CSS),
            "https://www.rfa.org/resizer/v2/ABC.jpg?width=1600": (420 * KIB, JPEG),
            "https://www.rfa.org/resizer/v2/ABC.jpg?width=800": (150 * KIB, JPEG),
            "https://www.rfa.org/resizer/v2/ABC.jpg?width=400": (45 * KIB, JPEG),
        },
        expect="https://www.rfa.org/resizer/v2/ABC.jpg?width=1600",
    ),
    # BBC: a large page (over the cap); images on ichef.bbci.co.uk, its own CDN, early on.
    ReplicaSite(
        "bbc-vietnamese",
        "https://www.bbc.com/vietnamese/",
        _page(
            "BBC News Tiếng Việt",
            "<link rel='preload' as='image' href='https://ichef.bbci.co.uk/ace/ws/800/cpsprodpb/"
            "hero.jpg.webp' imagesrcset='https://ichef.bbci.co.uk/ace/ws/240/cpsprodpb/hero.jpg"
            ".webp 240w, https://ichef.bbci.co.uk/ace/ws/800/cpsprodpb/hero.jpg.webp 800w'>",
            "<img src='https://ichef.bbci.co.uk/ace/ws/240/cpsprodpb/hero.jpg.webp'>",
            before=4 * KIB,
            after=250 * KIB,
        ),
        {
            "https://ichef.bbci.co.uk/ace/ws/800/cpsprodpb/hero.jpg.webp": (95 * KIB, WEBP),
            "https://ichef.bbci.co.uk/ace/ws/240/cpsprodpb/hero.jpg.webp": (14 * KIB, WEBP),
        },
        expect="https://ichef.bbci.co.uk/ace/ws/800/cpsprodpb/hero.jpg.webp",
    ),
    # VOA: images on gdb.voanews.com (VOA's own), lazily loaded.
    ReplicaSite(
        "voa-tiengviet",
        "https://www.voatiengviet.com/",
        _page(
            "VOA Tiếng Việt",
            "<meta property='og:image' content='https://www.voatiengviet.com/Content/"
            "responsive/VOA/img/top_logo_news.png'>",
            "<img src='data:image/gif;base64,R0lGODlhAQABAAAAACw=' data-src='https://gdb.voanews"
            ".com/01000000-0a00-0242-fe1c-08dc1f7c84b7_w1200_r1.jpg' class='lazy'>",
            before=10 * KIB,
        ),
        {
            "https://www.voatiengviet.com/Content/responsive/VOA/img/top_logo_news.png": (
                8 * KIB,
                PNG,
            ),
            "https://gdb.voanews.com/01000000-0a00-0242-fe1c-08dc1f7c84b7_w1200_r1.jpg": (
                310 * KIB,
                JPEG,
            ),
        },
        expect="https://gdb.voanews.com/01000000-0a00-0242-fe1c-08dc1f7c84b7_w1200_r1.jpg",
    ),
    # RFI: images on s.rfi.fr (same registrable domain) with data-srcset.
    ReplicaSite(
        "rfi-vietnamese",
        "https://vi.rfi.fr/viet-nam/",
        _page(
            "Việt Nam - RFI",
            "",
            "<picture><source data-srcset='https://s.rfi.fr/media/display/a1/w:1280/p:16x9/"
            "vn.webp 1280w, https://s.rfi.fr/media/display/a1/w:640/p:16x9/vn.webp 640w'>"
            "<img loading='lazy' data-src='https://s.rfi.fr/media/display/a1/w:640/p:16x9/"
            "vn.jpg'></picture>",
        ),
        {
            "https://s.rfi.fr/media/display/a1/w:1280/p:16x9/vn.webp": (1150 * KIB, WEBP),
            "https://s.rfi.fr/media/display/a1/w:640/p:16x9/vn.jpg": (80 * KIB, JPEG),
        },
        expect="https://s.rfi.fr/media/display/a1/w:1280/p:16x9/vn.webp",
    ),
    # WordPress with WP Rocket's lazy attributes.
    ReplicaSite(
        "nguoi-viet",
        "https://www.nguoi-viet.com/",
        _page(
            "Người Việt Online",
            "<link rel='stylesheet' href='https://www.nguoi-viet.com/wp-content/themes/nv/"
            "style.css?ver=6.4'>",
            "<img data-lazy-src='/wp-content/uploads/2026/11/front-1024x683.jpg' data-lazy-srcset"
            "='/wp-content/uploads/2026/11/front-1024x683.jpg 1024w, /wp-content/uploads/2026/11"
            "/front-2048x1366.jpg 2048w' src='data:image/svg+xml,%3Csvg%3E%3C/svg%3E'>",
            before=8 * KIB,
        ),
        {
            "https://www.nguoi-viet.com/wp-content/themes/nv/style.css?ver=6.4": (70 * KIB, CSS),
            "https://www.nguoi-viet.com/wp-content/uploads/2026/11/front-2048x1366.jpg": (
                1300 * KIB,
                JPEG,
            ),
            "https://www.nguoi-viet.com/wp-content/uploads/2026/11/front-1024x683.jpg": (
                210 * KIB,
                JPEG,
            ),
        },
        expect="https://www.nguoi-viet.com/wp-content/uploads/2026/11/front-2048x1366.jpg",
    ),
    # Only third-party resources (WordPress.com's shared image CDN, Google's fonts and ads).
    ReplicaSite(
        "thoibao",
        "https://thoibao.com/",
        _page(
            "Thời Báo",
            "<link rel='stylesheet' href='https://fonts.googleapis.com/css?family=Roboto'>"
            "<script src='https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js'>"
            "</script>",
            "<img src='https://i0.wp.com/thoibao.com/wp-content/uploads/2026/11/a.jpg?w=1200'>",
        ),
        {
            "https://i0.wp.com/thoibao.com/wp-content/uploads/2026/11/a.jpg?w=1200": (
                200 * KIB,
                JPEG,
            )
        },
    ),
    # <base href> on a CDN subdomain of the site itself, relative URLs under it.
    ReplicaSite(
        "luatkhoa",
        "https://www.luatkhoa.com/",
        _page(
            "Luật Khoa tạp chí",
            "<base href='https://cdn.luatkhoa.com/assets/'>",
            "<img src='img/cover-2026-11.jpg'><script src='js/app.min.js'></script>",
        ),
        {
            "https://cdn.luatkhoa.com/assets/img/cover-2026-11.jpg": (600 * KIB, JPEG),
            "https://cdn.luatkhoa.com/assets/js/app.min.js": (150 * KIB, JS),
        },
        expect="https://cdn.luatkhoa.com/assets/img/cover-2026-11.jpg",
    ),
    # Small images only, under the floor: none found, SNI A/B.
    ReplicaSite(
        "thevietnamese",
        "https://www.thevietnamese.org/",
        _page(
            "The Vietnamese Magazine",
            "",
            "<img src='/wp-content/uploads/2026/11/t1-150x150.jpg'>"
            "<img src='/wp-content/uploads/2026/11/t2-150x150.jpg'>",
        ),
        {
            "https://www.thevietnamese.org/wp-content/uploads/2026/11/t1-150x150.jpg": (
                9 * KIB,
                JPEG,
            ),
            "https://www.thevietnamese.org/wp-content/uploads/2026/11/t2-150x150.jpg": (
                11 * KIB,
                JPEG,
            ),
        },
    ),
    # Drupal: relative /sites/default/files/ paths; one image medium-sized (repeated).
    ReplicaSite(
        "baotiengdan",
        "https://baotiengdan.com/",
        _page(
            "Báo Tiếng Dân",
            "<link rel='stylesheet' href='/sites/default/files/css/css_x1.css'>",
            "<img src='/sites/default/files/styles/large/public/2026-11/td.jpg?itok=abc'>",
        ),
        {
            "https://baotiengdan.com/sites/default/files/css/css_x1.css": (30 * KIB, CSS),
            "https://baotiengdan.com/sites/default/files/styles/large/public/2026-11/td.jpg"
            "?itok=abc": (240 * KIB, JPEG),
        },
        expect="https://baotiengdan.com/sites/default/files/styles/large/public/2026-11/td.jpg"
        "?itok=abc",
    ),
    # Blogger: images on blogger.googleusercontent.com, a platform's, not the blog's.
    ReplicaSite(
        "danlambao",
        "https://danlambaovn.blogspot.com/",
        _page(
            "Dân Làm Báo",
            "<link rel='stylesheet' href='https://www.blogger.com/static/v1/widgets/css.css'>",
            "<img src='https://blogger.googleusercontent.com/img/b/R29vZ2xl/s1600/dlb.jpg'>",
        ),
        {"https://blogger.googleusercontent.com/img/b/R29vZ2xl/s1600/dlb.jpg": (400 * KIB, JPEG)},
    ),
    # A video on the site's own host, linked through <video><source>.
    ReplicaSite(
        "vietnamthoibao",
        "https://vietnamthoibao.org/",
        _page(
            "Việt Nam Thời Báo",
            "",
            "<video controls poster='/wp-content/uploads/poster.jpg'><source src='/wp-content/"
            "uploads/2026/11/phong-su.mp4' type='video/mp4'></video>",
        ),
        {
            "https://vietnamthoibao.org/wp-content/uploads/2026/11/phong-su.mp4": (12 * MIB, MP4),
            "https://vietnamthoibao.org/wp-content/uploads/poster.jpg": (60 * KIB, JPEG),
        },
        expect="https://vietnamthoibao.org/wp-content/uploads/2026/11/phong-su.mp4",
    ),
    # A large hero image on the same host.
    ReplicaSite(
        "viettan",
        "https://viettan.org/",
        _page(
            "Việt Tân",
            "<meta property='og:image' content='https://viettan.org/wp-content/uploads/hero.jpg'>",
            "<img src='/wp-content/uploads/hero.jpg' width='1920'>",
        ),
        {"https://viettan.org/wp-content/uploads/hero.jpg": (2 * MIB, JPEG)},
        expect="https://viettan.org/wp-content/uploads/hero.jpg",
    ),
    # Squarespace: every image on the platform's shared CDN.
    ReplicaSite(
        "the88project",
        "https://the88project.org/",
        _page(
            "The 88 Project",
            "<script src='https://assets.squarespace.com/universal/scripts-compressed/site.js'>"
            "</script>",
            "<img data-src='https://images.squarespace-cdn.com/content/v1/5a/88.jpg' "
            "data-image-dimensions='2500x1667'>",
        ),
        {"https://images.squarespace-cdn.com/content/v1/5a/88.jpg": (800 * KIB, JPEG)},
    ),
    # HRW: Drupal image styles with srcset, relative.
    ReplicaSite(
        "hrw-vietnam",
        "https://www.hrw.org/asia/vietnam/",
        _page(
            "Vietnam | Human Rights Watch",
            "",
            "<img srcset='/sites/default/files/styles/496x279/public/media/vn.jpg 496w, "
            "/sites/default/files/styles/1200w/public/media/vn.jpg 1200w' "
            "src='/sites/default/files/styles/496x279/public/media/vn.jpg'>",
            before=30 * KIB,
        ),
        {
            "https://www.hrw.org/sites/default/files/styles/1200w/public/media/vn.jpg": (
                350 * KIB,
                JPEG,
            ),
            "https://www.hrw.org/sites/default/files/styles/496x279/public/media/vn.jpg": (
                70 * KIB,
                JPEG,
            ),
        },
        expect="https://www.hrw.org/sites/default/files/styles/1200w/public/media/vn.jpg",
    ),
    # Over the cap: 70 KB of inline style before the images; only an early font preload is seen.
    ReplicaSite(
        "vietnamvoice",
        "https://vietnamvoice.org/",
        _page(
            "Vietnam Voice",
            "<link rel='preload' href='/fonts/be-vietnam-pro.woff2' as='font' crossorigin>"
            "<style>" + ".x{color:#123456}" * (70 * KIB // 18) + "</style>",
            "<img src='/wp-content/uploads/2026/11/banner-2400.jpg'>",
        ),
        {
            "https://vietnamvoice.org/fonts/be-vietnam-pro.woff2": (96 * KIB, WOFF2),
            "https://vietnamvoice.org/wp-content/uploads/2026/11/banner-2400.jpg": (
                3 * MIB,
                JPEG,
            ),
        },
        expect="https://vietnamvoice.org/fonts/be-vietnam-pro.woff2",
    ),
    # Wix: the platform's static CDN only.
    ReplicaSite(
        "bpsos",
        "https://www.bpsos.org/",
        _page(
            "BPSOS",
            "<link rel='stylesheet' href='https://static.parastorage.com/services/wix.css'>",
            "<img src='https://static.wixstatic.com/media/bp_1a2b~mv2.jpg/v1/fill/w_1900.jpg'>",
        ),
        {
            "https://static.wixstatic.com/media/bp_1a2b~mv2.jpg/v1/fill/w_1900.jpg": (
                500 * KIB,
                JPEG,
            )
        },
    ),
    # RSF: a relative image path with loading=lazy and data-src, a stylesheet.
    ReplicaSite(
        "rsf-vietnam",
        "https://rsf.org/en/country/vietnam",
        _page(
            "Vietnam | RSF",
            "<link rel='stylesheet' href='/themes/custom/rsf/css/main.css'>",
            "<img loading='lazy' data-src='/sites/default/files/styles/hero/public/vietnam.jpg'>",
        ),
        {
            "https://rsf.org/themes/custom/rsf/css/main.css": (120 * KIB, CSS),
            "https://rsf.org/sites/default/files/styles/hero/public/vietnam.jpg": (700 * KIB, JPEG),
        },
        expect="https://rsf.org/sites/default/files/styles/hero/public/vietnam.jpg",
    ),
    # -- controls --
    # VnExpress: images and scripts on vnecdn.net, its own CDN.
    ReplicaSite(
        "control-vnexpress",
        "https://vnexpress.net/",
        _page(
            "VnExpress - Báo tiếng Việt nhiều người xem nhất",
            "<script src='https://s1.vnecdn.net/vnexpress/restruct/j/v812/v3/production/"
            "libs.js'></script>",
            "<picture><source srcset='https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=1020 "
            "1x, https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=2040 2x'>"
            "<img src='https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=680'></picture>",
            before=12 * KIB,
            after=120 * KIB,
        ),
        {
            "https://s1.vnecdn.net/vnexpress/restruct/j/v812/v3/production/libs.js": (
                260 * KIB,
                JS,
            ),
            "https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=2040": (1100 * KIB, JPEG),
            "https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=680": (90 * KIB, JPEG),
        },
        expect="https://i1-vnexpress.vnecdn.net/2026/11/20/a.jpg?w=2040",
    ),
    # Wikipedia's portal: a sprite and a script on the same host, both small-ish.
    ReplicaSite(
        "control-wikipedia",
        "https://www.wikipedia.org/",
        _page(
            "Wikipedia",
            "<link rel='preload' href='portal/wikipedia.org/assets/img/sprite-de847d1a.svg' "
            "as='image'><script src='portal/wikipedia.org/assets/js/index-24c3e2ca18.js'></script>",
            "<img src='portal/wikipedia.org/assets/img/Wikipedia-logo-v2.png' srcset='portal/"
            "wikipedia.org/assets/img/Wikipedia-logo-v2@2x.png 2x'>",
        ),
        {
            "https://www.wikipedia.org/portal/wikipedia.org/assets/img/sprite-de847d1a.svg": (
                21 * KIB,
                "image/svg+xml",
            ),
            "https://www.wikipedia.org/portal/wikipedia.org/assets/js/index-24c3e2ca18.js": (
                90 * KIB,
                JS,
            ),
            "https://www.wikipedia.org/portal/wikipedia.org/assets/img/Wikipedia-logo-v2@2x.png": (
                35 * KIB,
                PNG,
            ),
        },
        expect="https://www.wikipedia.org/portal/wikipedia.org/assets/js/index-24c3e2ca18.js",
    ),
    # example.com: no resources at all.
    ReplicaSite(
        "control-example",
        "https://example.com/",
        b"<!doctype html><html><head><title>Example Domain</title></head><body><div><h1>"
        b"Example Domain</h1><p>This domain is for use in documentation examples.</p><p><a "
        b"href='https://iana.org/domains/example'>Learn more</a></p></div></body></html>",
    ),
    # Tuổi Trẻ: lazy images on cdn2.tuoitre.vn, the same registrable domain.
    ReplicaSite(
        "control-tuoitre",
        "https://tuoitre.vn/",
        _page(
            "Tuổi Trẻ Online",
            "",
            "<img class='lazyload' data-src='https://cdn2.tuoitre.vn/zoom/700_438/471584752817336"
            "320/2026/11/20/a.jpg' src='https://static.tuoitre.vn/tuoitre/web_images/blank.gif'>",
            before=16 * KIB,
        ),
        {
            "https://cdn2.tuoitre.vn/zoom/700_438/471584752817336320/2026/11/20/a.jpg": (
                180 * KIB,
                JPEG,
            ),
            "https://static.tuoitre.vn/tuoitre/web_images/blank.gif": (43, "image/gif"),
        },
        expect="https://cdn2.tuoitre.vn/zoom/700_438/471584752817336320/2026/11/20/a.jpg",
    ),
]
BY_NAME = {s.name: s for s in SITES}


def all_hosts() -> list[str]:
    return sorted({h for s in SITES for h in s.hosts})


# -- serving the replica (inside the lab's servers namespace) -----------------------------------
def _routes() -> dict[tuple[str, str], tuple[str, bytes | int]]:
    """(host, path and query) -> (content type, page bytes or object size)."""
    from urllib.parse import urlsplit

    out: dict[tuple[str, str], tuple[str, bytes | int]] = {}
    for s in SITES:
        u = urlsplit(s.url)
        out[(u.hostname or "", u.path or "/")] = (s.page_type, s.page)
        for url, (size, ctype) in s.objects.items():
            o = urlsplit(url)
            path = o.path + (f"?{o.query}" if o.query else "")
            out[(o.hostname or "", path)] = (ctype, size)
    return out


class Server:
    """Every replica host on one address, told apart by the Host header (and the SNI: one
    certificate names them all), HTTP/1.1 keep-alive; objects answer HEAD and one-byte ranges
    as CDNs do."""

    def __init__(self, host: str, port: int, ssl_context: Any = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from tests import servers as S

        routes = _routes()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "nginx"
            sys_version = ""

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = (self.headers.get("Host") or "").split(":")[0].lower()
                found = routes.get((name, self.path))
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ctype, what = found
                if isinstance(what, bytes):
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(what)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(what)
                    return
                todo = S.object_head(self, what, ctype)
                if todo is None:
                    return
                chunk = b"x" * 65536
                sent = 0
                while sent < todo:
                    part = chunk[: todo - sent]
                    try:
                        self.wfile.write(part)
                    except OSError:
                        return
                    sent += len(part)

            def do_HEAD(self) -> None:
                self.do_GET()

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
