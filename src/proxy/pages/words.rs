//! Every word netwarden's own pages say, in each built-in language. Plain
//! words for people who are not engineers: what happened, what to do, and
//! nothing internal (no rule, network or header name).

use std::borrow::Cow;

use super::Page;
use crate::engine::SignInFrom;
use crate::policy::pages::Lang;

/// A page's title, what happened, and what to do.
pub struct Words {
    pub title: &'static str,
    pub message: &'static str,
    pub advice: Cow<'static, str>,
}

/// The labels of the built-in template.
pub struct Labels {
    pub what_to_do: &'static str,
    pub your_address: &'static str,
    pub request_id: &'static str,
    pub whoami_link: &'static str,
}

pub fn labels(lang: Lang) -> Labels {
    match lang {
        Lang::En => Labels {
            what_to_do: "What to do:",
            your_address: "Your address",
            request_id: "Request id",
            whoami_link: "How this gateway sees your connection",
        },
        Lang::Ja => Labels {
            what_to_do: "対処方法：",
            your_address: "あなたのアドレス",
            request_id: "リクエストID",
            whoami_link: "このゲートウェイから見たあなたの接続",
        },
    }
}

fn retry_minutes(retry_after: u64) -> u64 {
    // Whole minutes, rounded up: "try again in 15 minutes".
    retry_after.div_ceil(60).max(1)
}

pub fn words(page: Page, lang: Lang) -> Words {
    match lang {
        Lang::En => english(page),
        Lang::Ja => japanese(page),
    }
}

fn english(page: Page) -> Words {
    let later =
        "Try again in a minute. If it persists, contact IT and give them the request id below.";
    let (title, message, advice): (&str, &str, Cow<'static, str>) = match page {
        Page::BlockedLogin => (
            "Access from this network is not allowed",
            "Sign-in to this console is only allowed from the company network or VPN.",
            VPN_EN.into(),
        ),
        Page::Blocked => (
            "Access from this network is not allowed",
            "This console can only be used from the company network or VPN.",
            VPN_EN.into(),
        ),
        Page::BadRequest => (
            "This request cannot be accepted",
            "The address of this request is malformed or ambiguous, so it was refused.",
            "Check the address you opened, or go back to the console's home page.".into(),
        ),
        Page::RequestTimeout => (
            "The request took too long to arrive",
            "What this request sent (a form or an upload) stopped coming, or came too slowly, so it was not passed on.",
            "Check your connection and send it again. If it persists, contact IT and give them the request id below.".into(),
        ),
        Page::BadGateway => (
            "The console is unavailable",
            "The console behind this gateway could not be reached or failed to answer.",
            later.into(),
        ),
        Page::GatewayTimeout => (
            "The console did not answer in time",
            "The console behind this gateway took too long to answer.",
            later.into(),
        ),
        Page::Busy => (
            "The console is busy",
            "The console behind this gateway has too many requests open right now.",
            later.into(),
        ),
        Page::LockedOut { retry_after } => {
            let minutes = retry_minutes(retry_after);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            (
                "Too many failed sign-ins",
                "There were too many failed sign-ins from this network, so sign-in is paused for it.",
                format!(
                    "Try again in {minutes} {unit}. If you did not try to sign in, contact IT and give them the request id below."
                )
                .into(),
            )
        }
        Page::SignInUnavailable => (
            "Sign-in is paused",
            "Sign-in is paused for a moment: the gateway cannot check failed sign-ins right now.",
            later.into(),
        ),
    };
    Words {
        title,
        message,
        advice,
    }
}

const VPN_EN: &str = "Connect to the company VPN and try again. If you are on the company network and still see this page, contact IT and give them the request id below.";
const VPN_JA: &str = "会社のVPNに接続してから、もう一度お試しください。社内ネットワークにいるのにこのページが表示される場合は、下のリクエストIDを添えて情報システム担当者にご連絡ください。";

fn japanese(page: Page) -> Words {
    let later = "少し時間をおいてから、もう一度お試しください。解決しない場合は、下のリクエストIDを添えて情報システム担当者にご連絡ください。";
    let (title, message, advice): (&str, &str, Cow<'static, str>) = match page {
        Page::BlockedLogin => (
            "このネットワークからはアクセスできません",
            "このコンソールへのサインインは、社内ネットワークまたはVPNからのみ許可されています。",
            VPN_JA.into(),
        ),
        Page::Blocked => (
            "このネットワークからはアクセスできません",
            "このコンソールは、社内ネットワークまたはVPNからのみ利用できます。",
            VPN_JA.into(),
        ),
        Page::BadRequest => (
            "このリクエストは受け付けられません",
            "このリクエストのアドレスが不正または曖昧なため、拒否されました。",
            "開いたアドレスを確認するか、コンソールのトップページに戻ってください。".into(),
        ),
        Page::RequestTimeout => (
            "リクエストの到着に時間がかかりすぎました",
            "このリクエストで送信された内容（フォームやアップロード）が途中で止まったか、届くのが遅すぎたため、転送されませんでした。",
            "接続を確認してから、もう一度送信してください。解決しない場合は、下のリクエストIDを添えて情報システム担当者にご連絡ください。".into(),
        ),
        Page::BadGateway => (
            "コンソールを利用できません",
            "このゲートウェイの先にあるコンソールに接続できないか、応答に失敗しました。",
            later.into(),
        ),
        Page::GatewayTimeout => (
            "コンソールが時間内に応答しませんでした",
            "このゲートウェイの先にあるコンソールの応答に時間がかかりすぎました。",
            later.into(),
        ),
        Page::Busy => (
            "コンソールが混み合っています",
            "このゲートウェイの先にあるコンソールは、現在処理中のリクエストが多すぎます。",
            later.into(),
        ),
        Page::LockedOut { retry_after } => (
            "サインインの失敗が多すぎます",
            "このネットワークからのサインインの失敗が多すぎるため、サインインを一時停止しています。",
            format!(
                "{}分後にもう一度お試しください。サインインを試みた覚えがない場合は、下のリクエストIDを添えて情報システム担当者にご連絡ください。",
                retry_minutes(retry_after)
            )
            .into(),
        ),
        Page::SignInUnavailable => (
            "サインインを一時停止しています",
            "現在ゲートウェイがサインインの失敗を確認できないため、サインインを少しの間停止しています。",
            later.into(),
        ),
    };
    Words {
        title,
        message,
        advice,
    }
}

/// The "why am I blocked?" page's words.
pub struct WhoamiWords {
    pub title: &'static str,
    pub your_address: &'static str,
    pub found: &'static str,
    pub request_id: &'static str,
    pub unexpected: &'static str,
}

pub fn whoami_words(lang: Lang) -> WhoamiWords {
    match lang {
        Lang::En => WhoamiWords {
            title: "How this gateway sees you",
            your_address: "Your address",
            found: "Found",
            request_id: "Request id",
            unexpected: "If this address is not what you expect, contact IT and give them the request id above.",
        },
        Lang::Ja => WhoamiWords {
            title: "このゲートウェイから見たあなた",
            your_address: "あなたのアドレス",
            found: "判定方法",
            request_id: "リクエストID",
            unexpected: "このアドレスに心当たりがない場合は、上のリクエストIDを添えて情報システム担当者にご連絡ください。",
        },
    }
}

/// How the address was found (`found_by` codes), in words.
pub fn found_by(code: &str, lang: Lang) -> &'static str {
    match (code, lang) {
        ("trusted_proxy", Lang::En) => {
            "from what a trusted proxy in front of this gateway reported"
        }
        ("trusted_proxy", Lang::Ja) => "このゲートウェイの前にある信頼済みプロキシの報告から",
        ("proxy_protocol", Lang::En) => {
            "from the load balancer in front of this gateway (PROXY protocol)"
        }
        ("proxy_protocol", Lang::Ja) => {
            "このゲートウェイの前にあるロードバランサーから（PROXYプロトコル）"
        }
        ("direct", Lang::En) => "directly from your connection",
        ("direct", Lang::Ja) => "あなたの接続から直接",
        (_, Lang::En) => {
            "it could not be found: a proxy in front sent an address that cannot be used"
        }
        (_, Lang::Ja) => "判定できませんでした（前段のプロキシが使用できないアドレスを送りました）",
    }
}

pub fn sign_in(s: SignInFrom, lang: Lang) -> &'static str {
    match (s, lang) {
        (SignInFrom::Allowed, Lang::En) => "Sign-in is allowed from this address.",
        (SignInFrom::Allowed, Lang::Ja) => "このアドレスからのサインインは許可されています。",
        (SignInFrom::Partly, Lang::En) => {
            "Sign-in is allowed from this address on some of the console's sign-in pages only."
        }
        (SignInFrom::Partly, Lang::Ja) => {
            "このアドレスからのサインインは、一部のサインインページでのみ許可されています。"
        }
        (SignInFrom::Blocked, Lang::En) => {
            "Sign-in is not allowed from this address. Connect to the company network or VPN and check again."
        }
        (SignInFrom::Blocked, Lang::Ja) => {
            "このアドレスからのサインインは許可されていません。社内ネットワークまたはVPNに接続してから、もう一度確認してください。"
        }
        (SignInFrom::NoRoute, Lang::En) => "This gateway does not check sign-ins.",
        (SignInFrom::NoRoute, Lang::Ja) => "このゲートウェイはサインインを確認していません。",
    }
}
