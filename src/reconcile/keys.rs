//! Match keys for names: the single place the reconciler gets its name keys from.
//!
//! The real keys belong to the normaliser (`crate::normalise::kana_key` and
//! `crate::normalise::kanji_key`), which is being written in parallel. Until it lands,
//! this module holds private stand-ins with the same semantics. Every caller in
//! `reconcile` goes through [`kana`] and [`kanji`], so switching to the real functions
//! is a one-line change in each of them.

/// The kana match key of a name (see [`kana_key`]).
pub(crate) fn kana(name: &str) -> String {
    // Swap to: crate::normalise::kana_key(name)
    kana_key(name)
}

/// The kanji match key of a name (see [`kanji_key`]).
pub(crate) fn kanji(name: &str) -> String {
    // Swap to: crate::normalise::kanji_key(name, crate::normalise::Tables::embedded())
    kanji_key(name)
}

/// Stand-in for `normalise::kana_key`: remove whitespace, hiragana → katakana,
/// small → full-size kana, ヴ → ブ (ヴァ → バ …), ヂ → ジ, ヅ → ズ, ヲ → オ, and drop
/// long-vowel marks and dashes.
fn kana_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let chars: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let mut c = chars[i];
        i += 1;
        if c.is_whitespace() {
            continue;
        }
        // Hiragana ぁ..ゖ → katakana ァ..ヶ; ゝゞ → ヽヾ.
        if ('\u{3041}'..='\u{3096}').contains(&c) || ('\u{309D}'..='\u{309E}').contains(&c) {
            c = char::from_u32(c as u32 + 0x60).unwrap_or(c);
        }
        if matches!(c, 'ー' | '‐' | '-' | '−' | '―' | '—' | '〜' | 'ｰ' | '～') {
            continue;
        }
        if c == 'ヴ' {
            // ヴァ ヴィ ヴ ヴェ ヴォ → バ ビ ブ ベ ボ.
            let next = chars.get(i).copied();
            let mapped = match next {
                Some('ァ' | 'ぁ') => Some('バ'),
                Some('ィ' | 'ぃ') => Some('ビ'),
                Some('ゥ' | 'ぅ') => Some('ブ'),
                Some('ェ' | 'ぇ') => Some('ベ'),
                Some('ォ' | 'ぉ') => Some('ボ'),
                _ => None,
            };
            match mapped {
                Some(m) => {
                    out.push(m);
                    i += 1;
                }
                None => out.push('ブ'),
            }
            continue;
        }
        let c = match c {
            'ァ' => 'ア',
            'ィ' => 'イ',
            'ゥ' => 'ウ',
            'ェ' => 'エ',
            'ォ' => 'オ',
            'ッ' => 'ツ',
            'ャ' => 'ヤ',
            'ュ' => 'ユ',
            'ョ' => 'ヨ',
            'ヮ' => 'ワ',
            'ヵ' => 'カ',
            'ヶ' => 'ケ',
            'ヂ' => 'ジ',
            'ヅ' => 'ズ',
            'ヲ' => 'オ',
            other => other,
        };
        out.push(c);
    }
    out
}

/// Stand-in for `normalise::kanji_key`: remove whitespace and fold variant kanji to
/// the common form.
fn kanji_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '髙' => '高',
            '﨑' | '嵜' | '碕' => '崎',
            '邊' | '邉' => '辺',
            '齋' | '齊' | '斎' => '斉',
            '澤' => '沢',
            '濱' => '浜',
            '嶋' | '嶌' => '島',
            '廣' => '広',
            '國' => '国',
            '櫻' => '桜',
            '藏' => '蔵',
            '眞' => '真',
            '惠' => '恵',
            '德' => '徳',
            '龍' => '竜',
            '冨' => '富',
            '舘' => '館',
            '淵' => '渕',
            '會' => '会',
            '圓' => '円',
            '實' => '実',
            '傳' => '伝',
            '萬' => '万',
            '榮' => '栄',
            '壽' => '寿',
            '學' => '学',
            '禮' => '礼',
            '彌' => '弥',
            '瀨' => '瀬',
            '蘆' => '芦',
            '槇' => '槙',
            '籠' => '篭',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_key_folds() {
        assert_eq!(kana("シナガワ\u{3000}タロウ"), "シナガワタロウ");
        assert_eq!(kana("しながわ たろう"), "シナガワタロウ");
        assert_eq!(kana("キョウコ"), "キヨウコ");
        assert_eq!(kana("ヴァイオリン"), "バイオリン");
        assert_eq!(kana("ヴ"), "ブ");
        assert_eq!(kana("ユーコ"), "ユコ");
        assert_eq!(kana("ミチヅキ"), "ミチズキ");
        assert_eq!(kana("チヂミ"), "チジミ");
        assert_eq!(kana("カヲル"), "カオル");
    }

    #[test]
    fn kanji_key_folds() {
        assert_eq!(kanji("髙橋\u{3000}一郎"), "高橋一郎");
        assert_eq!(kanji("山﨑"), "山崎");
        assert_eq!(kanji("渡邊 渡邉"), "渡辺渡辺");
        assert_eq!(kanji("齋藤 齊藤 斎藤"), "斉藤斉藤斉藤");
        assert_eq!(kanji("澤 濱 嶋"), "沢浜島");
    }
}
