"""Tags for the site's plain pages: the way back from an error page."""

from urllib.parse import urlsplit

from django import template
from django.utils.http import url_has_allowed_host_and_scheme

register = template.Library()


@register.simple_tag(takes_context=True)
def previous_page(context) -> str:
    """The page the person came from, when it is one of this site's and not this one; else "".

    A Referer from elsewhere is never offered as a link, and a page rendered without a
    request (the 500 page) has none.
    """
    request = context.get("request")
    if request is None:
        return ""
    referer = request.META.get("HTTP_REFERER", "")
    if not referer or not url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    parts = urlsplit(referer)
    back = parts.path + (f"?{parts.query}" if parts.query else "")
    return "" if back == request.get_full_path() else back
