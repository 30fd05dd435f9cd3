//! Every word netwarden's own pages say, in each built-in language. Plain
//! words for people who are not engineers: what happened, what to do, and
//! nothing internal (no rule, network or header name).

use std::borrow::Cow;

use super::{LockScope, Page};
use crate::engine::SignInFrom;
use crate::engine::account::NoAccount;
use crate::engine::who::Invalid;
use crate::policy::pages::Lang;

/// A page's title, what happened, what to do, and the general sentence on
/// whom to ask (replaced by the policy's `pages.contact` line when it has
/// one, so that a page never says "contact" twice).
pub struct Words {
    pub title: &'static str,
    pub message: &'static str,
    pub advice: Cow<'static, str>,
    pub contact: &'static str,
}

/// The labels of the built-in template.
pub struct Labels {
    /// With its own trailing space where the language wants one.
    pub what_to_do: &'static str,
    pub your_address: &'static str,
    pub request_id: &'static str,
    pub whoami_link: &'static str,
}

// One term set, in every surface (issue 23's review of the Japanese): the
// company network is 社内ネットワーク, its VPN 社内VPN, the client's
// address 接続元IPアドレス (never 「あなた」, never アドレス alone, which
// reads as an e-mail address), whom to ask 情報システム部門.

pub fn labels(lang: Lang) -> Labels {
    match lang {
        Lang::En => Labels {
            what_to_do: "What to do: ",
            your_address: "Your address",
            request_id: "Request id",
            whoami_link: "How this gateway sees your connection",
        },
        Lang::Ja => Labels {
            what_to_do: "対処方法：",
            your_address: "接続元IPアドレス",
            request_id: "リクエストID",
            whoami_link: "接続状況の確認",
        },
    }
}

/// How long to wait, rounded up the way `Retry-After` is (whole seconds):
/// seconds under a minute, else whole minutes rounded up.
fn wait(retry_after: u64, lang: Lang) -> String {
    let secs = retry_after.max(1);
    match (secs < 60, lang) {
        (true, Lang::En) => format!("{secs} second{}", if secs == 1 { "" } else { "s" }),
        (true, Lang::Ja) => format!("{secs}秒"),
        (false, Lang::En) => {
            let m = secs.div_ceil(60);
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        (false, Lang::Ja) => format!("{}分", secs.div_ceil(60)),
    }
}

/// When a closed console opens, as people write it: `Mon 7 Dec 08:00
/// (UTC+09:00)`, 「12月7日（月）8:00（UTC+09:00）」.
fn opening(o: &crate::engine::time::Opening, lang: Lang) -> String {
    let d = o.local;
    let wd = d.weekday().to_monday_zero_offset() as usize;
    let (h, m) = (
        o.offset_seconds / 3600,
        (o.offset_seconds.abs() % 3600) / 60,
    );
    let zone = format!(
        "UTC{}{:02}:{m:02}",
        if o.offset_seconds < 0 { '-' } else { '+' },
        h.abs()
    );
    match lang {
        Lang::En => {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month = MONTHS[usize::try_from(d.month() - 1).unwrap_or(0)];
            format!(
                "{} {} {month} {:02}:{:02} ({zone})",
                DAYS[wd],
                d.day(),
                d.hour(),
                d.minute()
            )
        }
        Lang::Ja => {
            const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
            format!(
                "{}月{}日（{}）{}:{:02}（{zone}）",
                d.month(),
                d.day(),
                DAYS[wd],
                d.hour(),
                d.minute()
            )
        }
    }
}

pub fn words(page: Page, lang: Lang) -> Words {
    match lang {
        Lang::En => english(page),
        Lang::Ja => japanese(page),
    }
}

const CONTACT_EN: &str = "If it persists, contact IT and give them the request id below.";
const CONTACT_JA: &str =
    "解決しない場合は、下記のリクエストIDを添えて情報システム部門までお問い合わせください。";

fn english(page: Page) -> Words {
    let later = "Wait a minute, then try again.";
    let (title, message, advice, contact): (&str, &str, Cow<'static, str>, &str) = match page {
        Page::BlockedLogin => (
            "Access from this network is not allowed",
            "Sign-in to this console is only allowed from the company network or VPN.",
            "Connect to the company VPN and try again.".into(),
            "If you are on the company network and still see this page, contact IT and give them the request id below.",
        ),
        Page::Blocked => (
            "Access from this network is not allowed",
            "This console can only be used from the company network or VPN.",
            "Connect to the company VPN and try again.".into(),
            "If you are on the company network and still see this page, contact IT and give them the request id below.",
        ),
        Page::BadRequest => (
            "This request cannot be accepted",
            "The URL or host name of this request is malformed or could be read in more than one way, so it was refused.",
            "Check the URL you opened, or start again from the console's home page.".into(),
            CONTACT_EN,
        ),
        Page::RequestTimeout => (
            "The request took too long to arrive",
            "What this request sent (a form or an upload) stopped coming, or came too slowly, so it was not passed on.",
            "Check your connection and send it again.".into(),
            CONTACT_EN,
        ),
        Page::BadGateway => (
            "The console is unavailable",
            "The console behind this gateway could not be reached or failed to answer.",
            later.into(),
            CONTACT_EN,
        ),
        Page::GatewayTimeout => (
            "The console did not answer in time",
            "The console behind this gateway took too long to answer.",
            later.into(),
            CONTACT_EN,
        ),
        Page::Busy => (
            "The console is busy",
            "The console behind this gateway has too many requests open right now.",
            later.into(),
            CONTACT_EN,
        ),
        Page::LockedOut { retry_after, scope } => (
            "Too many failed sign-ins",
            match scope {
                LockScope::Address => {
                    "Too many sign-ins from this address failed, so sign-in from it is paused."
                }
                LockScope::AccountFromNetwork => {
                    "Too many sign-ins to this account from this network failed, so its sign-in from this network is paused. Other accounts can still sign in."
                }
                LockScope::Account => {
                    "Too many sign-ins to this account failed, so its sign-in is paused. Other accounts can still sign in."
                }
                LockScope::Unnamed => {
                    "An account was locked after too many failed sign-ins, so sign-ins that do not name their account clearly are paused here."
                }
            },
            format!("Try again in {}.", wait(retry_after, Lang::En)).into(),
            "If you did not try to sign in, contact IT and give them the request id below.",
        ),
        Page::SignInUnavailable => (
            "Sign-in is paused",
            "Sign-in is paused for a moment: the gateway cannot check failed sign-ins right now.",
            later.into(),
            CONTACT_EN,
        ),
        Page::Closed { opens } => (
            "The console is closed at this hour",
            "From your network, this console can be used only at set hours.",
            match opens {
                Some(o) => format!("Try again from {}.", opening(&o, Lang::En)).into(),
                None => "Try again during its hours.".into(),
            },
            "If you need it now, contact IT and give them the request id below.",
        ),
        Page::AccountUnreadable(why) => (
            "This sign-in cannot be accepted",
            match why {
                NoAccount::Missing => "The sign-in does not name an account.",
                NoAccount::Ambiguous => {
                    "The sign-in names its account in more than one way, so which account it is for cannot be told."
                }
                NoAccount::Oversized => "The sign-in form is larger than a sign-in can be.",
                NoAccount::Slow => "The sign-in form arrived too slowly.",
                NoAccount::Unparseable => {
                    "The sign-in form could not be read: its format or character encoding is not one this gateway reads."
                }
            },
            "Sign in again from the console's sign-in page.".into(),
            CONTACT_EN,
        ),
        Page::NoIdentity(why) => (
            "Sign in through the company's sign-in first",
            match why {
                None => {
                    "This part of the console is only for people signed in through the company's sign-in service (SSO), and this request carries no such sign-in."
                }
                Some(Invalid::Expired) => {
                    "Your sign-in through the company's sign-in service (SSO) has expired."
                }
                Some(_) => {
                    "Your sign-in through the company's sign-in service (SSO) could not be verified."
                }
            },
            "Open the console again from the company's sign-in page, or sign out there and sign in again.".into(),
            CONTACT_EN,
        ),
    };
    Words {
        title,
        message,
        advice,
        contact,
    }
}

fn japanese(page: Page) -> Words {
    let later = "しばらく時間をおいてから、再度お試しください。";
    let vpn = "社内VPNに接続してから、再度アクセスしてください。";
    let vpn_contact = "社内ネットワークに接続しているにもかかわらずこのページが表示される場合は、下記のリクエストIDを添えて情報システム部門までお問い合わせください。";
    let (title, message, advice, contact): (&str, &str, Cow<'static, str>, &str) = match page {
        Page::BlockedLogin => (
            "このネットワークからはサインインできません",
            "このコンソールへのサインインは、社内ネットワークまたは社内VPNからのみ許可されています。",
            vpn.into(),
            vpn_contact,
        ),
        Page::Blocked => (
            "このネットワークからはアクセスできません",
            "このコンソールは、社内ネットワークまたは社内VPNからのみご利用いただけます。",
            vpn.into(),
            vpn_contact,
        ),
        Page::BadRequest => (
            "このリクエストは受け付けられません",
            "リクエストのURLまたはホスト名が不正か、複数の解釈ができる形式のため、受け付けませんでした。",
            "開いたURLをご確認いただくか、コンソールのトップページからやり直してください。".into(),
            CONTACT_JA,
        ),
        Page::RequestTimeout => (
            "送信に時間がかかりすぎました",
            "フォームやアップロードの送信が途中で止まったか、届くまでに時間がかかりすぎたため、コンソールへ転送しませんでした。",
            "通信環境をご確認のうえ、再度送信してください。".into(),
            CONTACT_JA,
        ),
        Page::BadGateway => (
            "コンソールを利用できません",
            "コンソールに接続できないか、コンソールから正常な応答がありませんでした。",
            later.into(),
            CONTACT_JA,
        ),
        Page::GatewayTimeout => (
            "コンソールの応答がありません",
            "コンソールからの応答に時間がかかりすぎています。",
            later.into(),
            CONTACT_JA,
        ),
        Page::Busy => (
            "コンソールが混み合っています",
            "現在、コンソールへのリクエストが集中しています。",
            later.into(),
            CONTACT_JA,
        ),
        Page::LockedOut { retry_after, scope } => (
            "サインインの失敗が多すぎます",
            match scope {
                LockScope::Address => {
                    "この接続元IPアドレスからのサインインの失敗が続いたため、この接続元からのサインインを一時停止しています。"
                }
                LockScope::AccountFromNetwork => {
                    "このネットワークからこのアカウントへのサインインの失敗が続いたため、このネットワークからの同アカウントのサインインを一時停止しています。ほかのアカウントは引き続きサインインできます。"
                }
                LockScope::Account => {
                    "このアカウントへのサインインの失敗が続いたため、同アカウントのサインインを一時停止しています。ほかのアカウントは引き続きサインインできます。"
                }
                LockScope::Unnamed => {
                    "サインインの失敗が続いたアカウントがあるため、アカウント名を正しく確認できないサインインを一時停止しています。"
                }
            },
            format!("{}後に、再度お試しください。", wait(retry_after, Lang::Ja)).into(),
            "サインインを試みた覚えがない場合は、下記のリクエストIDを添えて情報システム部門までお問い合わせください。",
        ),
        Page::SignInUnavailable => (
            "サインインを一時停止しています",
            "サインインの失敗を確認できない状態のため、サインインを一時的に停止しています。",
            later.into(),
            CONTACT_JA,
        ),
        Page::Closed { opens } => (
            "現在はご利用いただけない時間帯です",
            "ご利用のネットワークからは、このコンソールを決められた時間帯にのみご利用いただけます。",
            match opens {
                Some(o) => format!(
                    "{}以降に、再度アクセスしてください。",
                    opening(&o, Lang::Ja)
                )
                .into(),
                None => "利用可能な時間帯に、再度アクセスしてください。".into(),
            },
            "至急利用する必要がある場合は、下記のリクエストIDを添えて情報システム部門までお問い合わせください。",
        ),
        Page::AccountUnreadable(why) => (
            "このサインインは受け付けられません",
            match why {
                NoAccount::Missing => "サインインにアカウント名が含まれていません。",
                NoAccount::Ambiguous => {
                    "サインインにアカウント名が複数の形で含まれているため、どのアカウントへのサインインか判断できません。"
                }
                NoAccount::Oversized => "サインインのフォームが、サインインとしては大きすぎます。",
                NoAccount::Slow => "サインインのフォームの送信に時間がかかりすぎました。",
                NoAccount::Unparseable => {
                    "サインインのフォームを読み取れませんでした（このゲートウェイが読み取れない形式または文字コードです）。"
                }
            },
            "コンソールのサインインページから、もう一度サインインしてください。".into(),
            CONTACT_JA,
        ),
        Page::NoIdentity(why) => (
            "社内の認証（SSO）でのサインインが必要です",
            match why {
                None => {
                    "このページは、社内の認証サービス（SSO）でサインインした方のみご利用いただけます。このリクエストにはそのサインイン情報がありません。"
                }
                Some(Invalid::Expired) => {
                    "社内の認証サービス（SSO）でのサインインの有効期限が切れています。"
                }
                Some(_) => "社内の認証サービス（SSO）でのサインイン情報を確認できませんでした。",
            },
            "社内のサインインページからコンソールを開き直すか、そこでサインアウトしてから再度サインインしてください。".into(),
            CONTACT_JA,
        ),
    };
    Words {
        title,
        message,
        advice,
        contact,
    }
}

/// The "why am I blocked?" page's words.
pub struct WhoamiWords {
    pub title: &'static str,
    pub your_address: &'static str,
    pub found: &'static str,
    pub request_id: &'static str,
    /// Whom to ask, in general words (no `pages.contact` line).
    pub unexpected: &'static str,
    /// What to give them, before the policy's contact line.
    pub unexpected_then_contact: &'static str,
    /// With `identity:`: the label of who the sign-in service says you are.
    pub identity: &'static str,
    pub no_identity: &'static str,
    pub identity_not_believed: &'static str,
}

pub fn whoami_words(lang: Lang) -> WhoamiWords {
    match lang {
        Lang::En => WhoamiWords {
            title: "How this gateway sees you",
            your_address: "Your address",
            found: "Found",
            request_id: "Request id",
            unexpected: "If this address is not what you expect, contact IT and give them the request id above.",
            unexpected_then_contact: "If this address is not what you expect, quote the request id above.",
            identity: "Signed in (SSO) as",
            no_identity: "not signed in through the company's sign-in service",
            identity_not_believed: "a sign-in that could not be verified",
        },
        Lang::Ja => WhoamiWords {
            title: "接続状況の確認",
            your_address: "接続元IPアドレス",
            found: "判定元",
            request_id: "リクエストID",
            unexpected: "この接続元IPアドレスに心当たりがない場合は、上記のリクエストIDを添えて情報システム部門までお問い合わせください。",
            unexpected_then_contact: "この接続元IPアドレスに心当たりがない場合は、上記のリクエストIDをお知らせください。",
            identity: "認証（SSO）上のアカウント",
            no_identity: "社内の認証サービスでサインインしていません",
            identity_not_believed: "確認できないサインイン情報",
        },
    }
}

/// How the address was found (`found_by` codes), in words.
pub fn found_by(code: &str, lang: Lang) -> &'static str {
    match (code, lang) {
        ("trusted_proxy", Lang::En) => {
            "from what a trusted proxy in front of this gateway reported"
        }
        ("trusted_proxy", Lang::Ja) => "信頼済みプロキシからの通知",
        ("proxy_protocol", Lang::En) => {
            "from the load balancer in front of this gateway (PROXY protocol)"
        }
        ("proxy_protocol", Lang::Ja) => "前段のロードバランサー（PROXYプロトコル）",
        ("direct", Lang::En) => "directly from your connection",
        ("direct", Lang::Ja) => "直接接続",
        (_, Lang::En) => {
            "it could not be found: a proxy in front sent an address that cannot be used"
        }
        (_, Lang::Ja) => "判定できませんでした（前段のプロキシから利用できない値が送られました）",
    }
}

pub fn sign_in(s: SignInFrom, lang: Lang) -> &'static str {
    match (s, lang) {
        (SignInFrom::Allowed, Lang::En) => "Sign-in is allowed from this address.",
        (SignInFrom::Allowed, Lang::Ja) => "この接続元からのサインインは許可されています。",
        (SignInFrom::Partly, Lang::En) => {
            "Sign-in is allowed from this address on some of the console's sign-in pages only."
        }
        (SignInFrom::Partly, Lang::Ja) => {
            "この接続元からのサインインは、一部のサインインページでのみ許可されています。"
        }
        (SignInFrom::Blocked, Lang::En) => {
            "Sign-in is not allowed from this address. Connect to the company network or VPN and check again."
        }
        (SignInFrom::Blocked, Lang::Ja) => {
            "この接続元からのサインインは許可されていません。社内ネットワークまたは社内VPNに接続してから、再度ご確認ください。"
        }
        (SignInFrom::Closed, Lang::En) => {
            "Sign-in is not possible from this address at this hour; it is allowed during the console's hours."
        }
        (SignInFrom::Closed, Lang::Ja) => {
            "この接続元からは、現在の時間帯はサインインできません。利用可能な時間帯にサインインしてください。"
        }
        (SignInFrom::ByAccount, Lang::En) => {
            "Whether you may sign in from this address depends on the account you sign in with."
        }
        (SignInFrom::ByAccount, Lang::Ja) => {
            "この接続元からサインインできるかどうかは、サインインするアカウントによって異なります。"
        }
        (SignInFrom::NoRoute, Lang::En) => {
            "This gateway's policy names no sign-in page: it does not decide sign-ins apart from other requests."
        }
        (SignInFrom::NoRoute, Lang::Ja) => {
            "このゲートウェイのポリシーにはサインインページの指定がないため、サインインをほかのリクエストと区別して判定していません。"
        }
    }
}
