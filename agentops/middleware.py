"""Project-wide HTTP middleware: the Content-Security-Policy header on every answer, and a clear
answer to a request body sent in chunks."""

from django.http import JsonResponse

# Scripts and styles come only from our own static files (htmx included): no inline script, no
# inline style, nothing from elsewhere. Bars and the waterfall are drawn with SVG attributes.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def content_security_policy(get_response):
    def middleware(request):
        response = get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    return middleware


def chunked_body_refused(get_response):
    """A body sent with `Transfer-Encoding: chunked` has no length, and WSGI would hand the
    application an empty body: answer 411 saying so, instead of judging an empty request."""

    def middleware(request):
        encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
        if "chunked" in encoding.lower():
            message = (
                "A request body sent in chunks (Transfer-Encoding: chunked) is not accepted; "
                "send it with a Content-Length header."
            )
            error = {"code": "length_required", "message": message, "details": None}
            return JsonResponse({"error": error}, status=411)
        return get_response(request)

    return middleware
