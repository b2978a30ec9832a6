//! What the services say: the book's details, its ratings and reviews (JSON, in the shapes
//! Bookinfo's services answer with), and productpage's HTML.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::StarColor;

/// The book every page is about.
const TITLE: &str = "The Comedy of Errors";

pub(crate) fn details(id: &str) -> Value {
    json!({
        "id": id.parse::<u64>().unwrap_or(0),
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}

pub(crate) fn ratings(id: &str) -> Value {
    json!({
        "id": id.parse::<u64>().unwrap_or(0),
        "ratings": {"Reviewer1": 5, "Reviewer2": 4},
    })
}

/// The reviews; `ratings` is what the ratings service answered (v2 and v3 only).
pub(crate) fn reviews(
    id: &str,
    color: StarColor,
    pod: &str,
    ratings: Option<Result<Value, String>>,
) -> Value {
    let texts = [
        (
            "Reviewer1",
            "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
        ),
        (
            "Reviewer2",
            "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
        ),
    ];
    let star_color = match color {
        StarColor::Red => "red",
        _ => "black",
    };
    let reviews: Vec<Value> = texts
        .iter()
        .map(|(reviewer, text)| {
            let mut review = json!({"reviewer": reviewer, "text": text});
            match &ratings {
                None => {}
                Some(Ok(found)) => {
                    let stars = found["ratings"][reviewer].as_u64().unwrap_or(0);
                    review["rating"] = json!({"stars": stars, "color": star_color});
                }
                Some(Err(_)) => {
                    review["rating"] = json!({"error": "Ratings service is currently unavailable"});
                }
            }
            review
        })
        .collect();
    json!({
        "id": id,
        "podname": pod,
        "version": color.version(),
        "clustername": "null",
        "reviews": reviews,
    })
}

/// The user productpage's cookie says is signed in.
pub(crate) fn signed_in(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix("user="))
        .filter(|user| !user.is_empty())
        .map(str::to_owned)
}

/// `GET /login?user=NAME`: signs NAME in (a cookie) and goes back to the page.
pub(crate) fn login(query: &str) -> Response<Full<Bytes>> {
    let user = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("user="))
        .filter(|user| !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric()));
    let Some(user) = user else {
        let mut response = Response::new(Full::new(Bytes::from_static(
            b"sign in with /login?user=NAME (letters and digits)\n",
        )));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    redirect(&format!("user={user}; Path=/"))
}

/// `GET /logout`.
pub(crate) fn logout() -> Response<Full<Bytes>> {
    redirect("user=; Path=/; Max-Age=0")
}

fn redirect(cookie: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(
        http::header::LOCATION,
        http::HeaderValue::from_static("/productpage"),
    );
    if let Ok(value) = cookie.parse() {
        headers.insert(http::header::SET_COOKIE, value);
    }
    response
}

/// The page: the details, and the reviews with their stars, or Bookinfo's error messages.
pub(crate) fn product(
    details: Result<Value, String>,
    reviews: Result<Value, String>,
    user: Option<&str>,
) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n<h1>{TITLE}</h1>\n"
    );
    match user {
        Some(user) => page.push_str(&format!("<p class=\"user\">Signed in as {}</p>\n", escape(user))),
        None => page.push_str("<p class=\"user\">Not signed in (<a href=\"/login?user=jason\">sign in as jason</a>)</p>\n"),
    }
    match details {
        Ok(details) => {
            page.push_str("<h2>Book Details</h2>\n<dl class=\"details\">\n");
            for field in ["type", "pages", "publisher", "language", "ISBN-10", "ISBN-13"] {
                let value = match &details[field] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                page.push_str(&format!("<dt>{field}</dt><dd>{}</dd>\n", escape(&value)));
            }
            page.push_str("</dl>\n");
        }
        Err(_) => page.push_str(
            "<h2>Error fetching product details!</h2>\n<p>Sorry, product details are currently unavailable for this book.</p>\n",
        ),
    }
    match reviews {
        Ok(reviews) => {
            page.push_str(&format!(
                "<h2>Book Reviews</h2>\n<p class=\"reviews-version\">reviews-{}</p>\n",
                escape(reviews["version"].as_str().unwrap_or("unknown"))
            ));
            for review in reviews["reviews"].as_array().into_iter().flatten() {
                page.push_str(&format!(
                    "<blockquote><p>{}</p><small>{}</small>",
                    escape(review["text"].as_str().unwrap_or_default()),
                    escape(review["reviewer"].as_str().unwrap_or_default())
                ));
                let rating = &review["rating"];
                if let Some(error) = rating["error"].as_str() {
                    page.push_str(&format!("<p class=\"rating-error\">{}</p>", escape(error)));
                } else if let Some(stars) = rating["stars"].as_u64() {
                    let color = rating["color"].as_str().unwrap_or("black");
                    let full = "\u{2605}".repeat(stars.min(5) as usize);
                    let empty = "\u{2606}".repeat(5 - stars.min(5) as usize);
                    page.push_str(&format!(
                        "<p class=\"stars {}\"><font color=\"{}\">{full}{empty}</font></p>",
                        escape(color),
                        escape(color)
                    ));
                }
                page.push_str("</blockquote>\n");
            }
        }
        Err(_) => page.push_str(
            "<h2>Error fetching product reviews!</h2>\n<p>Sorry, product reviews are currently unavailable for this book.</p>\n",
        ),
    }
    page.push_str("</body></html>\n");
    page
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
