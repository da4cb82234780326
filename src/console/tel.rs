//! Phone numbers in the console: as people read them (`514 555-0199`), as `tel:` links, so staff
//! call a lead back with one tap.

use super::html::Esc;
use crate::domain::PhoneNumber;

/// `<a href="tel:+15145550199">514 555-0199</a>`.
pub fn link(phone: &PhoneNumber) -> String {
    format!(
        r#"<a href="tel:{}">{}</a>"#,
        Esc(phone.as_e164()),
        Esc(&phone.readable())
    )
}

/// [`link`], or a dash when there is no number.
pub fn link_or_dash(phone: Option<&PhoneNumber>) -> String {
    phone.map_or_else(|| "—".to_owned(), link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_a_tel_link_read_as_people_say_it() {
        let phone = PhoneNumber::try_from("514 555 0199").unwrap();
        assert_eq!(
            link(&phone),
            r#"<a href="tel:+15145550199">514 555-0199</a>"#
        );
        assert_eq!(link_or_dash(None), "—");
    }
}
